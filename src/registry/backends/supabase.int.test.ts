/**
 * The ModelStore contract against a real Supabase project (`npm run test:int`). Runs when a project URL and a
 * service-role key are set: AMML_TEST_SUPABASE_URL / AMML_TEST_SUPABASE_SERVICE_ROLE_KEY, or else SUPABASE_URL /
 * SUPABASE_SERVICE_ROLE_KEY. It creates a private bucket with a unique name, gives every test its own prefix in it,
 * and empties and deletes the bucket in `finally`, whatever happened.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSupabaseClient } from '../../commands/supabase-client.js';
import { parseManifest } from '../../ml/artifacts-fs.js';
import { writeModelFolder } from '../../testing/model-folder.js';
import { describeModelStore } from '../contract.js';
import { supabaseStore } from './supabase.js';

const url = process.env.AMML_TEST_SUPABASE_URL ?? process.env.SUPABASE_URL;
const key = process.env.AMML_TEST_SUPABASE_SERVICE_ROLE_KEY ?? process.env.SUPABASE_SERVICE_ROLE_KEY;
const configured = Boolean(url && key);

describe.skipIf(!configured)('real Supabase Storage', () => {
  const bucket = `amml-test-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
  const client = configured ? createSupabaseClient(url!, key!) : undefined!;

  beforeAll(async () => {
    const { error } = await client.storage.createBucket(bucket, { public: false });
    if (error) throw new Error(`could not create test bucket ${bucket}: ${error.message}`);
  });

  afterAll(async () => {
    try {
      const { error } = await client.storage.emptyBucket(bucket);
      if (error) throw error;
    } finally {
      await client.storage.deleteBucket(bucket);
    }
  });

  describeModelStore(
    `bucket ${bucket}`,
    async () => {
      const prefix = `t-${randomBytes(4).toString('hex')}`;
      const store = supabaseStore({ client, bucket, prefix });
      return {
        store,
        cleanup: async () => {
          const all = await store.list('');
          await store.remove(all.map((o) => o.path));
        },
      };
    },
    { parseManifest, writeModelFolder: (dir, seed) => writeModelFolder(dir, { seed }) },
  );

  it('refuses a second create of the same key on the real server (x-upsert: false)', async () => {
    const store = supabaseStore({ client, bucket, prefix: `dup-${randomBytes(4).toString('hex')}` });
    await store.putFile('a.bin', new Uint8Array([1]));
    await expect(store.putFile('a.bin', new Uint8Array([2]))).rejects.toMatchObject({ code: 'OBJECT_EXISTS' });
    expect(Array.from((await store.getFile('a.bin'))!)).toEqual([1]);
  });
});
