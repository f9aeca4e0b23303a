import type { Migration } from './types.js';

/**
 * The ML-relevant part of the app's schema (specs/app-schema.md §1), in its final shape. Every statement is
 * idempotent (`IF NOT EXISTS`) so it can run against the production database, whose tables already exist and were
 * partly changed by hand: existing tables are left as they are, and commands introspect them before writing.
 * Nothing here drops or rewrites data.
 */
/** The opclass follows the column's actual type, which may predate this migration (vector vs halfvec). */
export const hnswIndexSql = `
DO $$ DECLARE col_type text; BEGIN
  IF to_regclass('public.video_embeddings_hnsw_cosine_idx') IS NULL THEN
    SELECT split_part(format_type(a.atttypid, a.atttypmod), '(', 1) INTO col_type
      FROM pg_attribute a
      WHERE a.attrelid = 'public.video_embeddings'::regclass AND a.attname = 'embedding' AND NOT a.attisdropped;
    IF col_type IN ('vector', 'halfvec') THEN
      EXECUTE format('CREATE INDEX video_embeddings_hnsw_cosine_idx ON public.video_embeddings '
        'USING hnsw (embedding %s) WITH (m = 16, ef_construction = 64)', col_type || '_cosine_ops');
    END IF;
  END IF;
END $$;
`;

export const appSchema: Migration = {
  id: 1,
  name: 'app-schema',
  sql: ({ embeddingType, dim, annIndex }) => {
    const vec = `${embeddingType}(${dim})`;
    return `
-- Supabase has auth.users; PGlite and plain Postgres get a stub with just the key the app's FKs use.
CREATE SCHEMA IF NOT EXISTS auth;
DO $$ BEGIN
  IF to_regclass('auth.users') IS NULL THEN
    CREATE TABLE auth.users (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), created_at timestamptz DEFAULT now());
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS public.tag_groups (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text UNIQUE,
  use_for_training boolean NOT NULL DEFAULT true,
  show_in_ui boolean NOT NULL DEFAULT true
);
INSERT INTO public.tag_groups (name, use_for_training, show_in_ui) VALUES
  ('シチュエーション', true, true), ('タイプ', true, true), ('コスチューム', true, true), ('ジャンル', true, true),
  ('プレイ', true, true), ('その他', true, false), ('セール', false, false), ('未分類', false, false)
ON CONFLICT (name) DO NOTHING;

CREATE TABLE IF NOT EXISTS public.tags (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL UNIQUE,
  tag_group_id uuid REFERENCES public.tag_groups(id)
);

CREATE TABLE IF NOT EXISTS public.videos (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  external_id text UNIQUE,
  title text NOT NULL,
  description text,
  duration_seconds int,
  thumbnail_url text,
  thumbnail_vertical_url text,
  preview_video_url text,
  sample_video_url text,
  distribution_code text,
  maker_code text,
  director text,
  series text,
  maker text,
  label text,
  price numeric,
  distribution_started_at timestamptz,
  product_released_at timestamptz,
  image_urls text[],
  source text NOT NULL,
  published_at timestamptz DEFAULT now(),
  created_at timestamptz DEFAULT now(),
  product_url text,
  affiliate_url text,
  has_performer boolean NOT NULL DEFAULT false,
  CONSTRAINT videos_source_distribution_code_maker_code_key UNIQUE (source, distribution_code, maker_code)
);
CREATE INDEX IF NOT EXISTS idx_videos_source ON public.videos (source);
CREATE INDEX IF NOT EXISTS idx_videos_product_released_at ON public.videos (product_released_at DESC);
CREATE INDEX IF NOT EXISTS idx_videos_maker_code ON public.videos (maker_code);
CREATE INDEX IF NOT EXISTS idx_videos_source_sample ON public.videos (source) WHERE sample_video_url IS NOT NULL;

CREATE TABLE IF NOT EXISTS public.video_tags (
  video_id uuid NOT NULL REFERENCES public.videos(id) ON DELETE CASCADE,
  tag_id uuid NOT NULL REFERENCES public.tags(id) ON DELETE CASCADE,
  PRIMARY KEY (video_id, tag_id)
);
CREATE INDEX IF NOT EXISTS idx_video_tags_tag_video ON public.video_tags (tag_id, video_id);
CREATE INDEX IF NOT EXISTS idx_video_tags_video ON public.video_tags (video_id);

CREATE TABLE IF NOT EXISTS public.performers (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name text NOT NULL,
  fanza_actress_id text UNIQUE
);

CREATE TABLE IF NOT EXISTS public.video_performers (
  video_id uuid NOT NULL REFERENCES public.videos(id) ON DELETE CASCADE,
  performer_id uuid NOT NULL REFERENCES public.performers(id) ON DELETE CASCADE,
  PRIMARY KEY (video_id, performer_id)
);
CREATE INDEX IF NOT EXISTS idx_video_performers_video ON public.video_performers (video_id);

CREATE TABLE IF NOT EXISTS public.user_video_decisions (
  id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  anonymous_session_id text,
  video_id uuid REFERENCES public.videos(id) ON DELETE CASCADE,
  decision_type text NOT NULL
    CONSTRAINT user_video_decisions_decision_type_check
    CHECK (decision_type IN ('swipe_like', 'swipe_nope', 'grid_like', 'grid_nope')),
  surface text CONSTRAINT user_video_decisions_surface_check CHECK (surface IN ('swipe', 'grid')),
  recommendation_source text,
  recommendation_score double precision,
  recommendation_model_version text,
  recommendation_params jsonb,
  created_at timestamptz DEFAULT now(),
  CONSTRAINT user_video_decisions_user_id_video_id_key UNIQUE (user_id, video_id)
);
CREATE INDEX IF NOT EXISTS idx_uvd_user_created ON public.user_video_decisions (user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS idx_uvd_video ON public.user_video_decisions (video_id);
CREATE INDEX IF NOT EXISTS idx_uvd_user_type_created ON public.user_video_decisions (user_id, decision_type, created_at DESC);

CREATE TABLE IF NOT EXISTS public.user_features (
  user_id uuid PRIMARY KEY,
  liked_tags jsonb,
  liked_performers jsonb,
  updated_at timestamptz DEFAULT now()
);

CREATE TABLE IF NOT EXISTS public.user_excluded_tags (
  user_id uuid NOT NULL REFERENCES auth.users(id) ON DELETE CASCADE,
  tag_id uuid NOT NULL REFERENCES public.tags(id) ON DELETE CASCADE,
  PRIMARY KEY (user_id, tag_id)
);

CREATE TABLE IF NOT EXISTS public.fanza_rankings (
  source text NOT NULL,
  rank int NOT NULL,
  video_id uuid REFERENCES public.videos(id) ON DELETE SET NULL,
  external_id text NOT NULL,
  updated_at timestamptz DEFAULT now(),
  PRIMARY KEY (source, rank)
);

CREATE TABLE IF NOT EXISTS public.video_embeddings (
  video_id uuid PRIMARY KEY REFERENCES public.videos(id) ON DELETE CASCADE,
  embedding ${vec},
  model_version text,
  updated_at timestamptz DEFAULT now()
);
CREATE TABLE IF NOT EXISTS public.user_embeddings (
  user_id uuid PRIMARY KEY REFERENCES auth.users(id) ON DELETE CASCADE,
  embedding ${vec},
  model_version text,
  updated_at timestamptz DEFAULT now()
);
-- The serving query orders by the newest row's version; this index keeps that lookup cheap.
CREATE INDEX IF NOT EXISTS idx_video_embeddings_updated_at ON public.video_embeddings (updated_at DESC);
${annIndex ? hnswIndexSql : ''}`;
  },
};
