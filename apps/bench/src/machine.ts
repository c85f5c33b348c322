import os from 'node:os';

export interface MachineFacts {
  cpu: string;
  cores: number;
  memoryGiB: number;
  node: string;
  platform: string;
  /** V8 flags the bench gave every Node worker (e.g. relaxed SIMD on Node 20); none by default. */
  nodeFlags?: string[];
  /** 1-minute load average when the run started and ended: above ~0.5 the machine was busy. */
  loadStart: number;
  loadEnd?: number;
}

export function machineFacts(): MachineFacts {
  const cpus = os.cpus();
  return {
    cpu: cpus[0]?.model.trim() ?? 'unknown',
    cores: cpus.length,
    memoryGiB: Math.round((os.totalmem() / 2 ** 30) * 10) / 10,
    node: process.version,
    platform: `${os.type()} ${os.release()} ${os.arch()}`,
    loadStart: os.loadavg()[0],
  };
}
