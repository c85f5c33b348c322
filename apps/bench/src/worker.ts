/**
 * Entry of a measuring child process (forked by the harness, one per target): answers the
 * protocol's requests over IPC, one at a time.
 */
import { Handler } from './handler';
import type { Request } from './protocol';

const handler = new Handler();
let queue = Promise.resolve();

process.on('message', (req: Request) => {
  queue = queue.then(async () => {
    const reply = await handler.handle(req);
    process.send!(reply);
    if (req.op === 'exit') process.disconnect();
  });
});
