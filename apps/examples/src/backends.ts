import { setBackend, type Backend } from '@needle/ndarray';
import { registerCpuBackend } from '@needle/ndarray-cpu';

/** Register every backend this app ships with and make `name` the default. */
export async function useBackend(name: string): Promise<Backend> {
  registerCpuBackend();
  return setBackend(name);
}
