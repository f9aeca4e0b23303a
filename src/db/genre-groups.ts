/**
 * Tag group for new genre tags (app-schema §1.2: eight seeded groups; the app maps about 290 DMM genre names and a
 * new genre defaults to 未分類). This is a small mapping of common genres so that a fresh database gets useful
 * groups; a tag that already exists keeps whatever group the app gave it (the sync never reassigns groups).
 */

export const DEFAULT_TAG_GROUP = '未分類';

/** Group name → genre names. Group names are the app's seeded `tag_groups.name` values. */
export const GENRE_GROUPS: Readonly<Record<string, readonly string[]>> = {
  シチュエーション: [
    '寝取り・寝取られ・NTR',
    '寝取り・寝取られ',
    '不倫',
    '職場',
    '温泉',
    '旅行',
    'ナンパ',
    '逆ナン',
    '出張',
    '同棲',
    '恋愛',
    '学園もの',
  ],
  タイプ: [
    '美少女',
    '人妻・主婦',
    '人妻',
    '熟女',
    '巨乳',
    '貧乳・微乳',
    '美乳',
    'お姉さん',
    'ギャル',
    '素人',
    '女子大生',
    'OL',
    '痴女',
    'スレンダー',
    '長身',
    '小柄',
    'ぽっちゃり',
    '美脚',
    '色白',
  ],
  コスチューム: [
    '制服',
    '学生服',
    'ナース',
    'メイド',
    '水着',
    'コスプレ',
    '女教師',
    'ランジェリー',
    'キャビンアテンダント',
    '浴衣・着物',
    'ボディコン',
    'ミニスカ',
  ],
  ジャンル: ['単体作品', '企画', 'ドラマ', 'ベスト・総集編', 'ドキュメンタリー', 'アイドル・芸能人', '主観', 'VR専用'],
  プレイ: ['中出し', '顔射', 'フェラ', 'イラマチオ', 'ごっくん', '潮吹き', '騎乗位', '3P・4P', '手コキ', 'パイズリ', 'キス・接吻'],
  その他: ['ハイビジョン', '独占配信', '4K', '4時間以上作品', 'デジモ', 'サンプル動画', 'その他フェチ', 'ハーレム', '16時間以上作品'],
  セール: ['セール中', '期間限定セール', '10円セール', '50%OFF', '30%OFF'],
};

const GROUP_OF: ReadonlyMap<string, string> = new Map(
  Object.entries(GENRE_GROUPS).flatMap(([group, genres]) => genres.map((g) => [g, group] as const)),
);

/** The group a new tag with this genre name gets (the default when the genre is not in the mapping). */
export function tagGroupForGenre(name: string): string {
  return GROUP_OF.get(name) ?? DEFAULT_TAG_GROUP;
}

/** Every mapped genre name with its group (the writer loads this into the chunk transaction). */
export function genreGroupPairs(): { genre: string; group: string }[] {
  return [...GROUP_OF].map(([genre, group]) => ({ genre, group }));
}
