-- am-ml: a user's recent history for the embed-user Edge Function, in the exact shape am-ml's feature code reads
-- (the items.jsonl shape), built by the same rules `am-ml train --from-db` and `am-ml embed` use
-- (src/db/training-data.ts):
--   * the latest decision per (user, video); likes = swipe_like/grid_like, nopes = swipe_nope/grid_nope;
--   * the newest p_max_likes likes and p_max_nopes nopes, newest first (created_at desc, id desc);
--   * item_id = videos.id; tags = names of tags whose group has use_for_training, sorted; performers = the DMM
--     actress id (performers.id when it is null), sorted; released_at in epoch milliseconds;
--   * embedding = the item's stored vector (video_embeddings), for the fallback when the model cannot load.
-- Also returns the user's stored embedding (user_embeddings), the last-resort fallback.
-- Only the service role may call it (the function calls it with the service key after checking the caller).
create or replace function public.am_ml_user_history(p_user_id uuid, p_max_likes int default 200, p_max_nopes int default 100)
returns jsonb
language sql
stable
set search_path = ''
as $$
  with latest as (
    select distinct on (d.video_id) d.id, d.video_id, d.decision_type, d.created_at
      from public.user_video_decisions d
     where d.user_id = p_user_id and d.video_id is not null
     order by d.video_id, d.created_at desc nulls last, d.id desc
  ), ranked as (
    select l.video_id, l.decision_type in ('swipe_like', 'grid_like') as liked,
           row_number() over (partition by l.decision_type in ('swipe_like', 'grid_like')
                              order by l.created_at desc nulls last, l.id desc) as rn
      from latest l
     where l.decision_type in ('swipe_like', 'swipe_nope', 'grid_like', 'grid_nope')
  ), picked as (
    select r.* from ranked r
     where (r.liked and r.rn <= p_max_likes) or (not r.liked and r.rn <= p_max_nopes)
  ), items as (
    select p.liked, p.rn, jsonb_build_object(
             'item_id', v.id::text,
             'tags', array(select t.name from public.video_tags vt
                             join public.tags t on t.id = vt.tag_id
                             join public.tag_groups g on g.id = t.tag_group_id
                            where vt.video_id = v.id and g.use_for_training
                            order by t.name),
             'performers', array(select coalesce(pf.fanza_actress_id, pf.id::text) from public.video_performers vp
                                   join public.performers pf on pf.id = vp.performer_id
                                  where vp.video_id = v.id
                                  order by 1),
             'maker', v.maker, 'series', v.series, 'label', v.label, 'source', v.source,
             'price', v.price::float8,
             'released_at', floor(extract(epoch from v.product_released_at) * 1000)::float8,
             'duration_seconds', v.duration_seconds,
             'embedding', (select e.embedding::text::jsonb from public.video_embeddings e where e.video_id = v.id)
           ) as item
      from picked p join public.videos v on v.id = p.video_id
  )
  select jsonb_build_object(
    'likes', coalesce((select jsonb_agg(i.item order by i.rn) from items i where i.liked), '[]'::jsonb),
    'nopes', coalesce((select jsonb_agg(i.item order by i.rn) from items i where not i.liked), '[]'::jsonb),
    'user_embedding', (select u.embedding::text::jsonb from public.user_embeddings u where u.user_id = p_user_id)
  );
$$;

revoke execute on function public.am_ml_user_history(uuid, int, int) from public, anon, authenticated;
grant execute on function public.am_ml_user_history(uuid, int, int) to service_role;
