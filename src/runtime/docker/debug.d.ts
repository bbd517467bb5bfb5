// The part of the `debug` package (the logger docker-modem writes through) that prepull uses;
// the package ships no types of its own.
declare module 'debug' {
  interface CreateDebug {
    /** Whether a namespace would log under the namespaces enabled now. */
    enabled(namespace: string): boolean;
    /** Enables these namespaces (comma-separated, `-name` skips one); also sets process.env.DEBUG. */
    enable(namespaces: string): void;
    /** Disables every namespace and returns what was enabled, in `enable`'s form. */
    disable(): string;
  }
  const createDebug: CreateDebug;
  export default createDebug;
}
