// Label and field selectors with the grammar and answers of k8s.io/apimachinery/pkg/labels and
// pkg/fields: =, ==, !=, in, notin, exists, !key; fields metadata.name and metadata.namespace.
import { badRequest } from './status.ts';

export interface Requirement {
  key: string;
  op: 'eq' | 'neq' | 'in' | 'notin' | 'exists' | 'notexists';
  values: string[];
}

export type Selector = Requirement[];

/** Splits on commas that are not inside parentheses. */
function splitTerms(text: string): string[] {
  const terms: string[] = [];
  let depth = 0;
  let current = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      terms.push(current);
      current = '';
    } else {
      current += ch;
    }
  }
  terms.push(current);
  return terms.map((t) => t.trim()).filter((t) => t !== '');
}

const SET_TERM = /^([^\s!=()]+)\s+(in|notin)\s*\(([^)]*)\)$/;
const EQ_TERM = /^([^\s!=()]+)\s*(==|=|!=)\s*([^\s!=(),]*)$/;
const KEY_TERM = /^(!?)\s*([^\s!=()]+)$/;

function parseTerm(term: string, selector: string): Requirement {
  const set = SET_TERM.exec(term);
  if (set !== null) {
    const values = set[3]!
      .split(',')
      .map((v) => v.trim())
      .filter((v) => v !== '');
    return { key: set[1]!, op: set[2] === 'in' ? 'in' : 'notin', values };
  }
  const eq = EQ_TERM.exec(term);
  if (eq !== null) {
    return { key: eq[1]!, op: eq[2] === '!=' ? 'neq' : 'eq', values: [eq[3]!] };
  }
  const key = KEY_TERM.exec(term);
  if (key !== null) {
    return { key: key[2]!, op: key[1] === '!' ? 'notexists' : 'exists', values: [] };
  }
  throw badRequest(`unable to parse requirement: found '${term}' in selector "${selector}"`);
}

export function parseLabelSelector(text: string | null): Selector {
  if (text === null || text.trim() === '') return [];
  return splitTerms(text).map((t) => parseTerm(t, text));
}

export function matches(selector: Selector, labels: Record<string, string>): boolean {
  return selector.every((r) => {
    const has = Object.hasOwn(labels, r.key);
    const value = labels[r.key];
    switch (r.op) {
      case 'eq':
        return has && value === r.values[0];
      case 'neq':
        return !has || value !== r.values[0];
      case 'in':
        return has && r.values.includes(value!);
      case 'notin':
        return !has || !r.values.includes(value!);
      case 'exists':
        return has;
      case 'notexists':
        return !has;
    }
  });
}

/** Field selectors kube-apiserver supports on every resource. */
const GENERIC_FIELDS = ['metadata.name', 'metadata.namespace'];

export function parseFieldSelector(
  text: string | null,
  extraFields: readonly string[] = [],
): Selector {
  if (text === null || text.trim() === '') return [];
  const requirements = text.split(',').map((term) => {
    const m = /^([^=!]+)(==|=|!=)(.*)$/.exec(term.trim());
    if (m === null) throw badRequest(`invalid selector: '${text}'; can't understand '${term}'`);
    return { key: m[1]!.trim(), op: m[2] === '!=' ? 'neq' : 'eq', values: [m[3]!.trim()] } as const;
  });
  for (const r of requirements) {
    if (!GENERIC_FIELDS.includes(r.key) && !extraFields.includes(r.key)) {
      throw badRequest(`field label not supported: ${r.key}`);
    }
  }
  return requirements.map((r) => ({ ...r, values: [...r.values] }));
}
