import { describe, expect, it } from 'vitest';
import { getBackend, initBackend, listBackends, registerBackend, setBackend, setDefaultBackend, type Backend } from '@needle/ndarray';

/** Only the registry is under test here: a backend object with a name is enough. */
const fake = (name: string) => ({ name, memory: () => ({ buffers: 0, bytes: 0 }) }) as unknown as Backend;

describe('backend registry', () => {
  it('errors clearly before anything is registered', () => {
    expect(() => getBackend('nope')).toThrow(/no backend named 'nope' is registered/);
  });

  it('creates synchronous backends lazily, once', () => {
    let made = 0;
    registerBackend('fake-sync', () => {
      made++;
      return fake('fake-sync');
    });
    expect(made).toBe(0);
    const a = getBackend('fake-sync');
    expect(getBackend('fake-sync')).toBe(a);
    expect(made).toBe(1);
    expect(() => registerBackend('fake-sync', () => fake('x'))).toThrow(/already registered/);
    expect(listBackends()).toContain('fake-sync');
  });

  it('async factories need initBackend / setBackend first', async () => {
    registerBackend('fake-async', async () => fake('fake-async'));
    expect(() => getBackend('fake-async')).toThrow(/created asynchronously.*initBackend/);
    const b = await setBackend('fake-async');
    expect(getBackend()).toBe(b);
    expect(await initBackend('fake-async')).toBe(b);
  });

  it('setDefaultBackend takes names and instances', () => {
    setDefaultBackend('fake-sync');
    expect(getBackend().name).toBe('fake-sync');
    const inst = fake('inline');
    setDefaultBackend(inst);
    expect(getBackend()).toBe(inst);
    expect(getBackend('inline')).toBe(inst);
  });
});
