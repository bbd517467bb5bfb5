// Preloaded into a measured process (`node --import ./bench/peak-rss.ts …`): at exit it writes the
// process's peak resident memory (getrusage maxrss, KiB) to the file PEAK_RSS_FILE names, so a
// benchmark learns the high-water mark of a child it cannot sample at the right moment.
import { writeFileSync } from 'node:fs';

const file = process.env.PEAK_RSS_FILE;
if (file !== undefined) {
  process.on('exit', () => {
    writeFileSync(file, String(process.resourceUsage().maxRSS));
  });
}
