/**
 * Folding header fields for output. RFC 5322 section 2.2.3 lets a field break before any WSP;
 * section 2.1.1 asks for lines of at most 78 characters and requires at most 998. Folding
 * happens only at existing spaces, so unfolding returns the original value.
 */

/** The line length that folding aims for (RFC 5322 section 2.1.1). */
export const FOLD_WIDTH = 78;

/**
 * Formats `Name: value` folded at spaces to lines of at most `width` characters where the value
 * allows it, ending in CRLF. A word longer than the width stays whole on its own line, and
 * CR or LF bytes in `value` are replaced by spaces, so the output is always one field.
 */
export function formatHeaderField(name: string, value: string, width = FOLD_WIDTH): string {
  const clean = value.replace(/[\r\n]+/g, ' ');
  const words = clean.split(' ');
  let output = `${name}:`;
  let lineLength = output.length;
  let first = true;
  for (const word of words) {
    // An empty word stands for a run of spaces: keep every space so unfolding is exact.
    const piece = ` ${word}`;
    if (!first && word.length > 0 && lineLength + piece.length > width) {
      output += '\r\n';
      lineLength = 0;
    }
    output += piece;
    lineLength += piece.length;
    first = false;
  }
  return `${output}\r\n`;
}
