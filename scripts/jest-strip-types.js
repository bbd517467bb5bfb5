// Jest transform for our TypeScript: Node 24's own type stripper (the same one that lets Node run
// the sources directly). "strip" mode blanks type syntax in place, so line and column numbers in
// stack traces match the source without source maps. Works because the code uses only erasable
// syntax (tsconfig erasableSyntaxOnly); type checking is `npm run typecheck`'s job.
import { stripTypeScriptTypes } from 'node:module';
import { createHash } from 'node:crypto';

export default {
  process(source, filename) {
    return { code: stripTypeScriptTypes(source, { mode: 'strip', sourceUrl: filename }) };
  },
  getCacheKey(source, filename) {
    return createHash('sha256')
      .update(process.version)
      .update(filename)
      .update(source)
      .digest('hex');
  },
};
