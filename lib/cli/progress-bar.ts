// The CLI's progress bar on a terminal. cli-progress redraws on a timer that
// keeps Node alive until the bar is stopped, so the CLI keeps the one bar it
// draws here and stops it on every way out (success, error, Ctrl-C) before it
// prints anything else: the process then ends, and the error has its own line.
import type { SingleBar } from 'cli-progress';
import { formatBytes } from './bytes.js';
import type { ProgressEvent } from '../common/progress.js';

let active: SingleBar | undefined;

/** Stops the bar if one is drawn (its line ends; the cursor comes back). */
export function stopProgressBar(): void {
  const bar = active;
  active = undefined;
  bar?.stop();
}

/** Writes a line of its own on stderr; a bar drawn there redraws below it at its next tick. */
export function writeOverBar(line: string): void {
  process.stderr.write(active ? `\r\x1b[2K${line}` : line);
}

/** A listener drawing the operation's progress on stderr. */
export async function progressBar(): Promise<(e: ProgressEvent) => void> {
  const { SingleBar, Presets } = await import('cli-progress');
  const bar = new SingleBar(
    {
      format: '{bar} {percentage}% | {done}/{all} | {speed}/s | ETA {eta_formatted}',
      stream: process.stderr,
      hideCursor: true,
    },
    Presets.shades_classic,
  );
  const started = Date.now();
  let running = false;
  return (e: ProgressEvent) => {
    if (!running) {
      stopProgressBar(); // one bar at a time
      bar.start(Number(e.bytesTotal), 0, { done: formatBytes(0n), all: formatBytes(e.bytesTotal), speed: '0 B' });
      active = bar;
      running = true;
    }
    const secs = Math.max((Date.now() - started) / 1000, 0.001);
    bar.update(Number(e.bytesDone), {
      done: formatBytes(e.bytesDone),
      all: formatBytes(e.bytesTotal),
      speed: formatBytes(BigInt(Math.round(Number(e.bytesDone) / secs))),
    });
    if (e.filesDone === e.filesTotal && active === bar) stopProgressBar();
  };
}
