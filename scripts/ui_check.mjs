// The live page (`quiver run ... --ui ADDR`) in a real browser: loads the
// page in headless Chromium, waits until the charts have points, checks that
// the query table shows the query and that the input-rate chart's last value
// is the one /api/queries reports for that batch, and takes a screenshot.
//
//   node scripts/ui_check.mjs http://127.0.0.1:4040/ QUERY_NAME [screenshot.png]
//
// Needs playwright-core (npm) and Debian's chromium (/usr/bin/chromium, or
// $CHROMIUM). .ci/run installs both and runs this against the demo.
import { chromium } from "playwright-core";

const [url, query, screenshot] = process.argv.slice(2);
if (!url || !query) {
  console.error("usage: node scripts/ui_check.mjs URL QUERY [SCREENSHOT.png]");
  process.exit(2);
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
  ],
});
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(String(e)));
  await page.goto(url);
  const chart = `[data-query="${query}"][data-metric="input_rate"]`;
  // Charts draw once the query has batches; wait for a few.
  await page.waitForFunction(
    (sel) => Number(document.querySelector(sel)?.dataset.points || 0) >= 3,
    chart,
    { timeout: 60_000 },
  );
  const row = await page.textContent(`#queries tr[data-query="${query}"] td`);
  if (row !== query) throw new Error(`the query table shows '${row}', not '${query}'`);
  const { last, lastBatch } = await page.$eval(chart, (e) => ({
    last: Number(e.dataset.last),
    lastBatch: Number(e.dataset.lastBatch),
  }));
  const api = await (await fetch(new URL("/api/queries", url))).json();
  const q = api.queries.find((x) => x.name === query);
  const i = q.points.batch.indexOf(lastBatch);
  if (i < 0) throw new Error(`batch ${lastBatch} is no longer in /api/queries`);
  if (q.points.input_rate[i] !== last) {
    throw new Error(`chart shows ${last} rows/s for batch ${lastBatch}, the API ${q.points.input_rate[i]}`);
  }
  const charts = await page.$$eval(`[data-query="${query}"].chart canvas`, (c) => c.length);
  if (charts < 4) throw new Error(`only ${charts} charts drawn`);
  if (errors.length) throw new Error(`errors on the page: ${errors.join("; ")}`);
  if (screenshot) await page.screenshot({ path: screenshot, fullPage: true });
  console.log(`ui check: ${query} shown, ${charts} charts, input rate ${last} rows/s at batch ${lastBatch} matches the API`);
} finally {
  await browser.close();
}
