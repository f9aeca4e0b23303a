/**
 * A small RFC 4180 CSV reader that keeps line numbers: quoted fields with commas, doubled quotes and newlines,
 * CRLF or LF, a UTF-8 BOM. Malformed records (an unterminated quote) are returned as errors, not thrown, so the
 * caller can count and report them with their line. Pure module.
 */

export interface CsvRecord {
  /** 1-based line number where the record starts. */
  line: number;
  fields: string[];
}

export interface CsvError {
  line: number;
  reason: string;
}

/** Parse CSV text into records; blank lines are skipped. */
export function parseCsv(text: string): { records: CsvRecord[]; errors: CsvError[] } {
  const records: CsvRecord[] = [];
  const errors: CsvError[] = [];
  let i = text.charCodeAt(0) === 0xfeff ? 1 : 0;
  let line = 1;
  const n = text.length;
  while (i < n) {
    const startLine = line;
    const fields: string[] = [];
    let field = '';
    let inQuotes = false;
    let quotedField = false;
    let bad: string | undefined;
    let endOfRecord = false;
    while (i < n && !endOfRecord) {
      const c = text[i];
      if (inQuotes) {
        if (c === '"') {
          if (text[i + 1] === '"') {
            field += '"';
            i += 2;
          } else {
            inQuotes = false;
            i++;
          }
        } else {
          if (c === '\n') line++;
          field += c;
          i++;
        }
        continue;
      }
      if (c === '"') {
        if (field.length === 0 && !quotedField) {
          inQuotes = true;
          quotedField = true;
        } else {
          bad ??= 'a quote inside an unquoted field';
          field += c;
        }
        i++;
      } else if (c === ',') {
        fields.push(field);
        field = '';
        quotedField = false;
        i++;
      } else if (c === '\r' || c === '\n') {
        if (c === '\r' && text[i + 1] === '\n') i++;
        i++;
        line++;
        endOfRecord = true;
      } else {
        if (quotedField) bad ??= 'text after a closing quote';
        field += c;
        i++;
      }
    }
    if (inQuotes) {
      errors.push({ line: startLine, reason: 'unterminated quoted field (the rest of the file was read as one field)' });
      break;
    }
    fields.push(field);
    if (fields.length === 1 && fields[0] === '' && !quotedField) continue;
    if (bad) errors.push({ line: startLine, reason: bad });
    else records.push({ line: startLine, fields });
  }
  return { records, errors };
}

/** Map a header row to column positions; returns the missing required columns. */
export function headerIndex(
  header: readonly string[],
  required: readonly string[],
  optional: readonly string[] = [],
): { index: Record<string, number>; missing: string[] } {
  const index: Record<string, number> = {};
  header.forEach((h, i) => {
    const key = h.trim().toLowerCase();
    if ([...required, ...optional].includes(key) && index[key] === undefined) index[key] = i;
  });
  return { index, missing: required.filter((r) => index[r] === undefined) };
}
