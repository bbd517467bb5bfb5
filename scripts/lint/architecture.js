// The architecture rules lint enforces over src/ (docs/adr/0012-floors.md): every room of src/
// stands on a floor, a room imports only rooms on lower floors, and no file reaches itself
// again through its imports. Local ESLint rules, so a wrong-way import fails `npm run lint`
// with a message naming the rule and the floors.
import { readFileSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * The floors, from the ground up. A room is a folder of src/, or a file directly in src/.
 * Rooms on one floor do not import each other; each may import every room below it.
 */
export const FLOORS = [
  ['errors.ts', 'clock.ts', 'semaphore.ts', 'bytes.ts', 'testing'],
  ['image'],
  ['api', 'telemetry'],
  ['config', 'registry', 'runtime'],
  ['reconcile'],
  ['kube'],
  ['agent', 'audit', 'controller'],
  ['cli'],
];

const ADR = 'docs/adr/0012-floors.md';
const floorOf = new Map(FLOORS.flatMap((rooms, floor) => rooms.map((room) => [room, floor])));

/** The src/ directory a file lies under, and its room there; undefined outside src/. */
function placeOf(file) {
  const parts = path.resolve(file).split(path.sep);
  const src = parts.lastIndexOf('src');
  if (src === -1 || src === parts.length - 1) return undefined;
  return { src: parts.slice(0, src + 1).join(path.sep), room: parts[src + 1] };
}

function roomName(room) {
  return room.endsWith('.ts') ? `src/${room}` : `src/${room}/`;
}

function describe(room) {
  return `${roomName(room)} (floor ${floorOf.get(room)})`;
}

// import … from '…', export … from '…', import '…', import('…'): the specifiers of a source text.
const SPECIFIER =
  /(?:^|[;\s])(?:import|export)\s+(?:type\s+)?(?:[\w*{}\s,$]+?\s+from\s+)?['"]([^'"]+)['"]|\bimport\(\s*['"]([^'"]+)['"]\s*\)/g;

const cache = new Map();

/** The .ts files of this tree that `file` imports (relative specifiers only), cached by mtime. */
function importsOf(file) {
  let mtime;
  try {
    mtime = statSync(file).mtimeMs;
  } catch {
    return [];
  }
  const hit = cache.get(file);
  if (hit?.mtime === mtime) return hit.imports;
  const text = readFileSync(file, 'utf8').replace(/\/\*[\s\S]*?\*\/|\/\/[^\n]*/g, '');
  const imports = [];
  for (const match of text.matchAll(SPECIFIER)) {
    const specifier = match[1] ?? match[2];
    if (specifier.startsWith('.')) imports.push(path.resolve(path.dirname(file), specifier));
  }
  cache.set(file, { mtime, imports });
  return imports;
}

/** A path of imports from `start` back to `target`, or undefined. */
function cycleThrough(start, target) {
  const seen = new Set();
  const stack = [[start, [start]]];
  while (stack.length > 0) {
    const [file, trail] = stack.pop();
    if (seen.has(file)) continue;
    seen.add(file);
    for (const next of importsOf(file)) {
      if (next === target) return trail;
      if (!seen.has(next) && !next.endsWith('.test.ts')) stack.push([next, [...trail, next]]);
    }
  }
  return undefined;
}

function specifierNodes(context, onSpecifier) {
  const check = (node) => {
    if (node.source?.type === 'Literal' && typeof node.source.value === 'string') {
      onSpecifier(node, node.source.value);
    }
  };
  return {
    ImportDeclaration: check,
    ExportNamedDeclaration: check,
    ExportAllDeclaration: check,
    ImportExpression: check,
  };
}

const floors = {
  meta: {
    type: 'problem',
    docs: { description: 'A room of src/ imports only rooms on lower floors.' },
    schema: [],
  },
  create(context) {
    const here = placeOf(context.filename);
    if (here === undefined) return {};
    const ownFloor = floorOf.get(here.room);
    return specifierNodes(context, (node, specifier) => {
      if (!specifier.startsWith('.')) return;
      const target = path.resolve(path.dirname(context.filename), specifier);
      const there = placeOf(target);
      if (there === undefined || there.src !== here.src) {
        context.report({
          node,
          message: `src/ imports only from src/: "${specifier}" leaves it (${ADR}).`,
        });
        return;
      }
      if (there.room === here.room) return;
      const theirFloor = floorOf.get(there.room);
      if (ownFloor === undefined || theirFloor === undefined) {
        const unplaced = ownFloor === undefined ? here.room : there.room;
        context.report({
          node,
          message: `${roomName(unplaced)} stands on no floor: add it to FLOORS in scripts/lint/architecture.js and to the map in docs/development.md (${ADR}).`,
        });
        return;
      }
      if (theirFloor >= ownFloor) {
        const why =
          theirFloor === ownFloor ? 'a room on the same floor' : 'a room on a higher floor';
        context.report({
          node,
          message: `${describe(here.room)} may not import ${describe(there.room)}: that is ${why}; a room imports only rooms below it (${ADR}).`,
        });
      }
    });
  },
};

const noCycle = {
  meta: {
    type: 'problem',
    docs: { description: 'No file of src/ reaches itself again through its imports.' },
    schema: [],
  },
  create(context) {
    const file = path.resolve(context.filename);
    if (placeOf(file) === undefined) return {};
    return specifierNodes(context, (node, specifier) => {
      if (!specifier.startsWith('.')) return;
      const target = path.resolve(path.dirname(file), specifier);
      const trail = cycleThrough(target, file);
      if (trail === undefined) return;
      const root = placeOf(file).src;
      const shown = [file, ...trail, file].map((f) => path.relative(path.dirname(root), f));
      context.report({
        node,
        message: `import cycle: ${shown.join(' → ')} (type-only imports count too; ${ADR}).`,
      });
    });
  },
};

export default { rules: { floors, 'no-cycle': noCycle } };
