import { createTestDb } from '../testing/pglite.js';
import { describeCatalogWriter } from './catalog-writer.contract.js';

// The contract runs against the embedded default in every test run.
describeCatalogWriter('pglite', () => createTestDb());
