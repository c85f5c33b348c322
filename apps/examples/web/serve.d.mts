/** Types of serve.mjs, for the TypeScript test that imports it. */
export interface DemoServer {
  /** The page's address, e.g. http://127.0.0.1:8080/ */
  url: string;
  port: number;
  close(): Promise<void>;
}

export function startServer(options?: { port?: number; host?: string; mnistDir?: string }): Promise<DemoServer>;

export function buildDemo(): Promise<{ js: string; map: string }>;
