import { readFile } from 'node:fs/promises';
import { BackupError } from '../common/errors.js';

/** Reads one line from the terminal without echoing it. */
export async function promptHidden(question: string): Promise<string> {
  const input = process.stdin;
  if (!input.isTTY) throw new BackupError('ERR_PASSWORD_REQUIRED', 'no terminal to ask for the password on');
  process.stderr.write(question);
  input.setRawMode(true);
  input.resume();
  input.setEncoding('utf8');
  try {
    return await new Promise<string>((resolve, reject) => {
      let typed = '';
      const onData = (chunk: string) => {
        for (const ch of chunk) {
          if (ch === '\r' || ch === '\n') {
            input.off('data', onData);
            return resolve(typed);
          }
          if (ch === '\u0003') {
            input.off('data', onData);
            return reject(new BackupError('ERR_ABORTED', 'the operation was aborted'));
          }
          typed = ch === '\u007f' ? typed.slice(0, -1) : typed + ch;
        }
      };
      input.on('data', onData);
    });
  } finally {
    input.setRawMode(false);
    input.pause();
    process.stderr.write('\n');
  }
}

/** The password from `--password-file` (its first line), else the environment variable `envName`. */
export async function givenPassword(file: string | undefined, envName: string): Promise<string | undefined> {
  if (file !== undefined) {
    const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
      throw new BackupError(err.code ?? 'EIO', `cannot read the password file ${file}: ${err.message}`);
    });
    return text.split(/\r?\n/)[0]!;
  }
  return process.env[envName] || undefined;
}
