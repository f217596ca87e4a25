// Browser test of the likeness web page, run against a live `likeness serve`:
//   node search.mjs <BASE_URL> <QUERY_IMAGE> <SCREENSHOT.png> [EXPECTED_FIRST_NAME]
// Uploads QUERY_IMAGE through the page's file picker, waits for the result grid, checks it
// (cards with thumbnails, distances, labels; the expected file first when given), clicks a
// result to search by it, drops the image on the drop zone, switches the feature, filters by
// a label, moves the threshold slider (checking each effect on the grid), and saves a
// screenshot. Exit code 0 = pass.
// Uses Debian's chromium (override with $CHROMIUM) in a fresh profile (--user-data-dir, set by
// launchPersistentContext), headless, no sandbox/GPU/background networking.
import { chromium } from "playwright-core";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";

const [base, image, shot, expectedFirst] = process.argv.slice(2);
if (!base || !image || !shot) {
  console.error("usage: node search.mjs BASE_URL QUERY_IMAGE SCREENSHOT.png [EXPECTED_FIRST_NAME]");
  process.exit(2);
}

function check(cond, msg) {
  if (!cond) throw new Error(`check failed: ${msg}`);
}

const profile = mkdtempSync(join(tmpdir(), "likeness-chromium-"));
const context = await chromium.launchPersistentContext(profile, {
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  headless: true,
  viewport: { width: 1280, height: 900 },
  args: [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
  ],
});
let failed = false;
try {
  const page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base, { waitUntil: "networkidle" });
  // The collections and features load.
  await page.waitForFunction(() => document.querySelectorAll("#feature option").length > 0, null, { timeout: 15000 });
  const features = await page.$$eval("#feature option", (os) => os.map((o) => o.value));
  console.log(`features offered: ${features.join(", ")}`);

  // Pick the image through the hidden file input.
  await page.setInputFiles("#file", image);
  await page.waitForSelector("#results .result", { timeout: 30000 });
  await page.waitForFunction(() => /results by/.test(document.querySelector("#status").textContent), null, { timeout: 30000 });
  const cards = await page.$$eval("#results .result", (cs) =>
    cs.map((c) => ({
      id: c.dataset.id,
      name: c.querySelector(".name").textContent,
      label: c.querySelector(".label").textContent,
      distance: Number(c.querySelector(".distance").textContent),
      thumb: c.querySelector("img").getAttribute("src"),
    })));
  console.log(`upload search: ${cards.length} results; first: ${JSON.stringify(cards[0])}`);
  check(cards.length > 0, "the grid shows results");
  check(cards.every((c) => c.thumb.startsWith("/thumb/")), "every card has a thumbnail");
  check(cards.every((c) => Number.isFinite(c.distance)), "every card shows a distance");
  for (let i = 1; i < cards.length; i++) check(cards[i - 1].distance <= cards[i].distance + 1e-6, "results are sorted by distance");
  if (expectedFirst) check(cards[0].name === expectedFirst, `first result is ${expectedFirst}, got ${cards[0].name}`);
  // Thumbnails really load.
  await page.waitForFunction(() => {
    const img = document.querySelector("#results .result img");
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 15000 });
  const status = await page.textContent("#status");
  console.log(`status: ${status}`);

  // Click the second result: the page searches by that record, which is excluded from its own results.
  const target = cards[Math.min(1, cards.length - 1)];
  await page.click(`#results .result[data-id="${target.id}"]`);
  await page.waitForFunction((id) => {
    const first = document.querySelector("#results .result");
    return first && !document.querySelector(`#results .result[data-id="${id}"]`) && /results by/.test(document.querySelector("#status").textContent);
  }, target.id, { timeout: 30000 });
  const after = await page.$$eval("#results .result", (cs) => cs.length);
  console.log(`click search (by ${target.name}): ${after} results`);
  check(after > 0, "searching by a clicked result shows results");

  // Run `action`, then wait for the search it starts to finish; returns the cards.
  const search = async (action) => {
    await page.evaluate(() => { document.querySelector("#status").textContent = ""; });
    await action();
    await page.waitForFunction(() => /results by|error/i.test(document.querySelector("#status").textContent), null, { timeout: 30000 });
    const st = await page.textContent("#status");
    check(/results by/.test(st), `search finished without error (status: ${st})`);
    const got = await page.$$eval("#results .result", (cs) => cs.map((c) => ({
      name: c.querySelector(".name").textContent,
      label: c.querySelector(".label").textContent,
      distance: Number(c.querySelector(".distance").textContent),
    })));
    return { status: st, cards: got };
  };

  // Drag and drop the image onto the drop zone (a real DataTransfer with the file's bytes).
  const b64 = readFileSync(image).toString("base64");
  const dropped = await search(async () => {
    const dt = await page.evaluateHandle(({ b64, name }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const t = new DataTransfer();
      t.items.add(new File([bytes], name, { type: "image/png" }));
      return t;
    }, { b64, name: basename(image) });
    await page.dispatchEvent("#drop", "drop", { dataTransfer: dt });
  });
  console.log(`drop search: ${dropped.cards.length} results; first ${dropped.cards[0]?.name}`);
  check(dropped.cards.length > 0, "dropping an image shows results");
  if (expectedFirst) check(dropped.cards[0].name === expectedFirst, `dropped: first result is ${expectedFirst}`);

  // Another feature: the search reruns with it.
  const other = features.find((f) => f !== features[0] && f === "color") || features.find((f) => f !== features[0]);
  if (other) {
    const r = await search(() => page.selectOption("#feature", other));
    console.log(`feature ${other}: ${r.status}`);
    check(r.status.includes(`by ${other}`), `the status names feature ${other}`);
    check(r.cards.length > 0, `feature ${other} gives results`);
  }

  // Label filter: every card carries the chosen label.
  const labels = await page.$$eval("#label option", (os) => os.map((o) => o.value).filter((v) => v));
  check(labels.length > 0, "the label filter offers the collection's labels");
  const chosen = labels[0];
  const byLabel = await search(() => page.selectOption("#label", chosen));
  console.log(`label ${chosen}: ${byLabel.cards.length} results`);
  check(byLabel.cards.length > 0 && byLabel.cards.every((c) => c.label === chosen), `every card is labelled ${chosen}`);

  // Threshold slider: enable it, move it to the median distance; every card is within it.
  await search(() => page.check("#use-threshold"));
  const sorted = byLabel.cards.map((c) => c.distance).sort((a, b) => a - b);
  const want = sorted[Math.floor(sorted.length / 2)];
  const limited = await search(() => page.$eval("#threshold", (t, v) => {
    t.value = String(v);
    t.dispatchEvent(new Event("input"));
    t.dispatchEvent(new Event("change"));
  }, want));
  const thr = Number(await page.$eval("#threshold", (t) => t.value));
  const shown = await page.textContent("#threshold-value");
  console.log(`threshold ${thr} (shown ${shown}): ${limited.cards.length} results`);
  // Distances are shown with 3 decimals: allow the display's rounding.
  check(limited.cards.every((c) => c.distance <= thr + 5e-4), `every card is within the threshold ${thr}`);
  check(limited.cards.every((c) => c.label === chosen), "the label filter still applies");
  check(limited.cards.length <= byLabel.cards.length, "a threshold never adds results");
  check(errors.length === 0, `no page errors (${errors.join("; ")})`);
  await page.screenshot({ path: shot, fullPage: true });
  console.log(`screenshot: ${shot} (query ${basename(image)})`);
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
