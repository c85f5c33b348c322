import { runBackendConformance } from '@needle/ndarray/testing';
import { createTemplateBackend } from '../src/index';

// The whole kit: every kernel, every view path, error paths and memory accounting, compared with
// host-side references and fixed values. Looser tolerances go in the third argument, e.g.
// { transcendental: { rtol: 1e-4, atol: 1e-5 } } for approximate exp/log kernels.
runBackendConformance('template', () => createTemplateBackend());
