// Entry names are only ever used as labels (outputs are numbered), but an archive that names
// files outside itself is hostile or broken, so those entries are not read at all.

/** Why this entry name is unsafe, or null when it stays inside the archive. */
export function unsafePathReason(name: string): string | null {
  if (name.includes('\0')) return 'name contains a NUL byte';
  const slashed = name.replace(/\\/g, '/');
  if (slashed.startsWith('/') || /^[a-zA-Z]:/.test(slashed)) return 'absolute path';
  if (slashed.split('/').includes('..')) return 'path leaves the archive (..)';
  return null;
}

/** Files that operating systems add to archives (macOS resource forks, Finder/Explorer caches). */
export function isSystemMetadata(name: string): boolean {
  const slashed = name.replace(/\\/g, '/');
  const base = slashed.slice(slashed.lastIndexOf('/') + 1);
  return (
    slashed.startsWith('__MACOSX/') ||
    base.startsWith('._') ||
    base === '.DS_Store' ||
    base === 'Thumbs.db' ||
    base === 'desktop.ini'
  );
}

/** The name as shown in reports: control characters (terminal escapes) replaced. */
export function displayName(name: string): string {
  // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping them is the point
  return name.replace(/[\u0000-\u001f\u007f]/g, '?');
}
