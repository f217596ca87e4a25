// Browser test of the likeness web page, run against a live `likeness serve --root ROOT`:
//   node search.mjs <BASE_URL> <QUERY_IMAGE> <ARTIFACT_DIR> <EXPECTED_FIRST_NAME> <UNRELATED_IMAGE>
// Drives every view and saves a screenshot of each step in ARTIFACT_DIR:
// - search: upload through the file picker, the grid (whole-image thumbnails, verdict/score/
//   distance, labels, tag chips), the query shown, drag and drop, feature, label filter,
//   threshold slider, the Results box (500 stays 500, "Show more"), "no close match";
// - lightbox: metadata, "open original" (served), Escape closes, "search by this";
// - browse: paging, label filter, tag chips and tag text search;
// - duplicates: groups with facts and a suggested keep, the keep rule, confirmation (cancel
//   changes nothing), remove from the collection, move, delete files.
// Prints `MOVED <path>` / `DELETED <path>` lines for the Rust test to check on disk.
// Exit code 0 = pass. Uses Debian's chromium (override with $CHROMIUM), headless, fresh profile.
import { chromium } from "playwright-core";
import { mkdirSync, mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, basename } from "node:path";

const [base, image, artifacts, expectedFirst, unrelated] = process.argv.slice(2);
if (!base || !image || !artifacts || !expectedFirst || !unrelated) {
  console.error("usage: node search.mjs BASE_URL QUERY_IMAGE ARTIFACT_DIR EXPECTED_FIRST_NAME UNRELATED_IMAGE");
  process.exit(2);
}
mkdirSync(artifacts, { recursive: true });

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
let page;
const shot = async (name) => {
  const path = join(artifacts, name);
  await page.screenshot({ path, fullPage: true });
  console.log(`screenshot: ${path}`);
};
try {
  page = context.pages()[0] || (await context.newPage());
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(base, { waitUntil: "networkidle" });
  await page.waitForFunction(() => document.querySelectorAll("#feature option").length > 0, null, { timeout: 15000 });
  const features = await page.$$eval("#feature option", (os) => os.map((o) => o.value));
  console.log(`features offered: ${features.join(", ")}`);

  // Favicon: linked from the page and served.
  const icon = await page.$eval("link[rel=icon]", (l) => l.href);
  const iconRes = await page.request.get(icon);
  check(iconRes.status() === 200 && /svg/.test(iconRes.headers()["content-type"]), `favicon ${icon} is served (${iconRes.status()})`);

  const cardsOf = (grid) => page.$$eval(`${grid} .result`, (cs) => cs.map((c) => ({
    id: c.dataset.id,
    name: c.querySelector(".name").textContent,
    label: c.querySelector(".label").textContent,
    distance: c.querySelector(".distance") ? Number(c.querySelector(".distance").textContent) : null,
    verdict: c.querySelector(".verdict") ? c.querySelector(".verdict").textContent : null,
    tags: [...c.querySelectorAll(".chip.tag")].map((t) => t.textContent),
    thumb: c.querySelector("img").getAttribute("src"),
  })));
  // Run `action`, then wait for the search it starts to finish; returns the status and cards.
  const search = async (action) => {
    await page.evaluate(() => { document.querySelector("#status").textContent = ""; });
    await action();
    await page.waitForFunction(() => /results? by|error|cannot|no /i.test(document.querySelector("#status").textContent), null, { timeout: 30000 });
    const st = await page.textContent("#status");
    check(/results? by/.test(st), `search finished without error (status: ${st})`);
    return { status: st, cards: await cardsOf("#results") };
  };

  // ---- search by an uploaded image ----
  const first = await search(() => page.setInputFiles("#file", image));
  const cards = first.cards;
  console.log(`upload search: ${cards.length} results; first: ${JSON.stringify(cards[0])}`);
  check(cards.length > 0, "the grid shows results");
  check(cards.every((c) => c.thumb.startsWith("/thumb/")), "every card has a thumbnail");
  check(cards.every((c) => Number.isFinite(c.distance)), "every card shows a distance");
  check(cards.every((c) => c.verdict), "every card shows a verdict chip");
  for (let i = 1; i < cards.length; i++) check(cards[i - 1].distance <= cards[i].distance + 1e-6, "results are sorted by distance");
  check(cards[0].name === expectedFirst, `first result is ${expectedFirst}, got ${cards[0].name}`);
  check((await page.textContent("#query-info")).includes(basename(image)), "the query image is named");
  // Whole-image thumbnails that really load.
  const fit = await page.$eval("#results .result img", (i) => getComputedStyle(i).objectFit);
  check(fit === "contain", `thumbnails show the whole image (object-fit ${fit})`);
  await page.waitForFunction(() => {
    const img = document.querySelector("#results .result img");
    return img && img.complete && img.naturalWidth > 0;
  }, null, { timeout: 15000 });
  const allTags = cards.flatMap((c) => c.tags);
  console.log(`status: ${first.status}; tags shown: ${[...new Set(allTags)].join(", ") || "none"}`);
  await shot("01-search.png");

  // ---- geometric verification: the copy is verified and where it appears is outlined ----
  const verified = await search(() => page.check("#verify"));
  const overlay = await page.$$eval("#results .result", (cs) => cs.map((c) => ({
    name: c.querySelector(".name").textContent,
    quad: c.querySelector(".thumb svg.quad polygon") ? c.querySelector(".thumb svg.quad polygon").getAttribute("points") : null,
    badge: c.querySelector(".verified") ? c.querySelector(".verified").textContent : null,
  })));
  console.log(`verified search: first ${JSON.stringify(overlay[0])}`);
  check(verified.cards[0].name === expectedFirst, `verified: first result is ${expectedFirst}, got ${verified.cards[0].name}`);
  check(overlay[0].quad && overlay[0].quad.split(" ").length === 4, "the first hit has the matched quadrilateral drawn over it");
  check(/✓ \d+/.test(overlay[0].badge || ""), "the first hit shows its inlier count");
  const box = await page.$eval("#results .result .thumb svg.quad", (s) => { const r = s.getBoundingClientRect(); return r.width * r.height; });
  check(box > 0, "the overlay covers the thumbnail");
  check(overlay.filter((o) => o.quad).length < overlay.length, "unrelated hits get no outline");
  await shot("01b-verified.png");
  await search(() => page.uncheck("#verify"));

  // ---- lightbox: metadata, original, Escape, search by this ----
  const target = cards[Math.min(1, cards.length - 1)];
  await page.click(`#results .result[data-id="${target.id}"]`);
  await page.waitForSelector("#lightbox[open]", { timeout: 10000 });
  const meta = await page.$$eval("#lb-meta dd", (ds) => Object.fromEntries(ds.map((d) => [d.dataset.key, d.textContent])));
  console.log(`lightbox: ${JSON.stringify(meta)}`);
  check(meta.path.endsWith(target.name), `the preview shows the path of ${target.name}`);
  check(/\d/.test(meta.size) && /\d+ × \d+/.test(meta.resolution) && meta.label === target.label, "size, resolution, label shown");
  await page.waitForFunction(() => !document.querySelector("#lb-original").hidden && document.querySelector("#lb-original").href, null, { timeout: 10000 });
  const original = await page.$eval("#lb-original", (a) => a.href);
  const origRes = await page.request.get(original);
  check(origRes.status() === 200 && /^image\//.test(origRes.headers()["content-type"]), `open original is served (${origRes.status()})`);
  await page.waitForFunction(() => { const i = document.querySelector("#lb-img"); return i.complete && i.naturalWidth > 0; }, null, { timeout: 10000 });
  await shot("02-lightbox.png");
  await page.keyboard.press("Escape");
  await page.waitForFunction(() => !document.querySelector("#lightbox").open, null, { timeout: 5000 });
  // Reopen and search by this image: it becomes the query and leaves its own results.
  await page.click(`#results .result[data-id="${target.id}"]`);
  await page.waitForSelector("#lightbox[open]");
  const byThis = await search(() => page.click("#lb-search"));
  check(!(await page.$eval("#lightbox", (d) => d.open)), "search by this closes the preview");
  check(byThis.cards.length > 0 && !byThis.cards.some((c) => c.id === target.id), "searching by a record excludes it");
  check((await page.textContent("#query-info")).includes(target.name), `the query is shown as ${target.name}`);
  console.log(`search by ${target.name}: ${byThis.cards.length} results`);

  // ---- drag and drop (a real DataTransfer with the file's bytes) ----
  const b64 = readFileSync(image).toString("base64");
  const drop = async (file) => {
    const bytes64 = readFileSync(file).toString("base64");
    const dt = await page.evaluateHandle(({ b64, name }) => {
      const bytes = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
      const t = new DataTransfer();
      t.items.add(new File([bytes], name, { type: "image/png" }));
      return t;
    }, { b64: bytes64, name: basename(file) });
    await page.dispatchEvent("#drop", "drop", { dataTransfer: dt });
  };
  check(b64.length > 0, "query image read");
  const dropped = await search(() => drop(image));
  check(dropped.cards.length > 0 && dropped.cards[0].name === expectedFirst, `dropped: first result is ${expectedFirst}`);

  // ---- another feature ----
  const other = features.find((f) => f !== features[0] && f === "color") || features.find((f) => f !== features[0]);
  if (other) {
    const r = await search(() => page.selectOption("#feature", other));
    check(r.status.includes(`by ${other}`), `the status names feature ${other}`);
    check(r.cards.length > 0, `feature ${other} gives results`);
  }

  // ---- label filter and threshold ----
  const labels = await page.$$eval("#label option", (os) => os.map((o) => o.value).filter((v) => v));
  check(labels.length > 0, "the label filter offers the collection's labels");
  const chosen = labels[0];
  const byLabel = await search(() => page.selectOption("#label", chosen));
  check(byLabel.cards.length > 0 && byLabel.cards.every((c) => c.label === chosen), `every card is labelled ${chosen}`);
  await search(() => page.check("#use-threshold"));
  const sorted = byLabel.cards.map((c) => c.distance).sort((a, b) => a - b);
  const want = sorted[Math.floor(sorted.length / 2)];
  const limited = await search(() => page.$eval("#threshold", (t, v) => {
    t.value = String(v);
    t.dispatchEvent(new Event("input"));
    t.dispatchEvent(new Event("change"));
  }, want));
  const thr = Number(await page.$eval("#threshold", (t) => t.value));
  check(limited.cards.every((c) => c.distance <= thr + 5e-4), `every card is within the threshold ${thr}`);
  check(limited.cards.every((c) => c.label === chosen), "the label filter still applies");
  check(limited.cards.length <= byLabel.cards.length, "a threshold never adds results");
  await search(() => page.uncheck("#use-threshold"));
  await search(() => page.selectOption("#label", ""));

  // ---- the Results box: 500 stays 500 (every image comes back), and "Show more" ----
  const count = Number((await page.$eval("#collection", (s) => s.selectedOptions[0].textContent)).match(/\((\d+)\)/)[1]);
  // Typing a number and leaving the box (a real change event) reruns the search.
  const setK = (n) => page.fill("#k", n).then(() => page.$eval("#k", (k) => k.blur()));
  const all = await search(() => setK("500"));
  check((await page.inputValue("#k")) === "500", "the Results box keeps 500");
  check(all.cards.length === count, `k=500 shows all ${count} images (got ${all.cards.length})`);
  check(await page.isHidden("#more"), "no 'Show more' when every result is shown");
  const three = await search(() => setK("3"));
  check(three.cards.length === 3 && (await page.isVisible("#more")), "3 results and a 'Show more' button");
  check(/more exist/.test(three.status), "the status says more exist");
  const six = await search(() => page.click("#more"));
  check(six.cards.length === 6, `'Show more' shows 6 (got ${six.cards.length})`);
  await search(() => setK("24"));

  // ---- no close match: an unrelated image on a calibrated feature ----
  const calibrated = await page.evaluate(() => {
    const c = state.collections.find((x) => x.name === document.querySelector("#collection").value);
    return c.fields.filter((f) => f.bands).map((f) => f.name);
  });
  check(calibrated.length > 0, "a feature with calibrated bands");
  await search(() => page.selectOption("#feature", calibrated[0]));
  await search(() => page.setInputFiles("#file", unrelated));
  const notice = await page.textContent("#notice");
  console.log(`unrelated query by ${calibrated[0]}: ${notice}`);
  check(await page.isVisible("#notice") && /No close match/.test(notice), "'No close match' is said");
  check((await cardsOf("#results")).length === 0, "no grid of unrelated images");
  await shot("03-no-close-match.png");
  await page.click("#show-anyway");
  const anyway = await cardsOf("#results");
  check(anyway.length > 0 && anyway.every((c) => c.verdict === "unrelated"), "shown anyway, each marked unrelated");

  // ---- tags: chips on cards, a click browses by the tag, text search ----
  if (allTags.length) {
    const tag = allTags[0];
    await search(() => page.setInputFiles("#file", image));
    await page.click(`#results .chip.tag >> nth=0`);
    await page.waitForFunction(() => !document.querySelector("#browse-view").hidden && /image/.test(document.querySelector("#browse-status").textContent), null, { timeout: 10000 });
    const tagged = await cardsOf("#browse-grid");
    console.log(`tag ${tag}: ${tagged.length} images`);
    check((await page.inputValue("#tag")) === tag, "the tag box holds the tag");
    check(tagged.length > 0 && tagged.every((c) => c.tags.some((t) => t.includes(tag))), `every image is tagged ${tag}`);
    const word = tag.split(" ")[0].slice(0, 3).toUpperCase();
    await page.fill("#tag", word);
    await page.press("#tag", "Enter");
    await page.waitForFunction((w) => document.querySelector("#browse-status").textContent.includes(w), word, { timeout: 10000 });
    const byText = await cardsOf("#browse-grid");
    check(byText.length >= tagged.length && byText.every((c) => c.tags.some((t) => t.toLowerCase().includes(word.toLowerCase()))), `tag text '${word}' finds tagged images`);
    await shot("04-tags.png");
    await page.fill("#tag", "");
  } else {
    console.log("no tags in this collection: tag chips not checked");
  }

  // ---- browse: paging and the label filter ----
  const browse = async (action) => {
    await page.evaluate(() => { document.querySelector("#browse-status").textContent = ""; });
    await action();
    await page.waitForFunction(() => /image|error/.test(document.querySelector("#browse-status").textContent), null, { timeout: 10000 });
    return { status: await page.textContent("#browse-status"), cards: await cardsOf("#browse-grid"), info: await page.textContent("#page-info") };
  };
  let b = await browse(() => page.click("#tab-browse"));
  b = await browse(() => page.selectOption("#page-size", "12"));
  console.log(`browse: ${b.status} (${b.info})`);
  check(b.status.startsWith(`${count} images`), `browse counts all ${count} images`);
  check(b.cards.length === Math.min(12, count), "a page of 12");
  check(b.info === `Page 1 of ${Math.ceil(count / 12)}`, `page info ${b.info}`);
  check(await page.isDisabled("#prev-page"), "no previous page on the first");
  const fit2 = await page.$eval("#browse-grid .result img", (i) => getComputedStyle(i).objectFit);
  check(fit2 === "contain", "browse thumbnails show the whole image");
  await shot("05-browse.png");
  if (count > 12) {
    const p2 = await browse(() => page.click("#next-page"));
    check(p2.cards.length === count - 12 && p2.info === "Page 2 of 2", `page 2 holds the rest (${p2.info})`);
    check(!p2.cards.some((c) => b.cards.some((x) => x.id === c.id)), "pages do not overlap");
    await browse(() => page.click("#prev-page"));
  }
  const lbl = await browse(() => page.selectOption("#label", chosen));
  const labelCount = Number((await page.$eval("#label", (s) => s.selectedOptions[0].textContent)).match(/\((\d+)\)/)[1]);
  check(lbl.cards.length === labelCount && lbl.cards.every((c) => c.label === chosen), `browse by label ${chosen}: ${labelCount} images`);
  // The preview walks through the page.
  await page.click("#browse-grid .result >> nth=0");
  await page.waitForSelector("#lightbox[open]");
  if (lbl.cards.length > 1) {
    await page.keyboard.press("ArrowRight");
    await page.waitForFunction((n) => document.querySelector("#lb-title").textContent === n, lbl.cards[1].name, { timeout: 5000 });
  }
  await page.keyboard.press("Escape");
  await browse(() => page.selectOption("#label", ""));

  // ---- duplicates ----
  const dupes = async (action) => {
    await page.evaluate(() => { document.querySelector("#dupes-status").textContent = ""; });
    await action();
    await page.waitForFunction(() => /group|No near|error|\d+ (removed|moved|deleted)/.test(document.querySelector("#dupes-status").textContent), null, { timeout: 30000 });
    return page.$$eval("#groups .group", (gs) => gs.map((g) => ({
      members: [...g.querySelectorAll(".dup")].map((d) => ({
        id: d.dataset.id,
        name: d.querySelector(".name").textContent,
        path: d.querySelector(".name").title,
        keep: d.classList.contains("keep"),
        selected: d.querySelector(".select").checked,
        facts: ["f-size", "f-res", "f-date", "f-format"].map((k) => d.querySelector(`.${k}`).textContent),
      })),
    })));
  };
  let groups = await dupes(() => page.click("#tab-dupes"));
  console.log(`duplicates: ${await page.textContent("#dupes-status")}`);
  for (const g of groups) console.log(`  group: ${g.members.map((m) => `${m.name}${m.keep ? " (keep)" : ""}`).join(", ")}`);
  check(groups.length >= 3, `at least 3 groups (got ${groups.length})`);
  for (const g of groups) {
    check(g.members.length >= 2, "a group has two images or more");
    check(g.members.filter((m) => m.keep).length === 1, "one suggested keep per group");
    check(g.members.every((m) => m.selected === !m.keep), "every copy but the keeper is selected");
    check(g.members.every((m) => m.facts.every((f) => f && f !== "—")), "size, resolution, date and format shown");
  }
  const withQuery = groups.find((g) => g.members.some((m) => m.name === expectedFirst));
  check(withQuery, `${expectedFirst} is in a group`);
  check(withQuery.members.find((m) => m.keep).name === expectedFirst, `the original ${expectedFirst} is the suggested keep (highest quality)`);
  // Another rule: still one keeper per group.
  await page.selectOption("#keep-rule", "largest");
  const keepers = await page.$$eval("#groups .group", (gs) => gs.map((g) => g.querySelectorAll(".dup.keep").length));
  check(keepers.every((n) => n === 1), "one keeper per group under 'largest'");
  await page.selectOption("#keep-rule", "quality");
  await shot("06-duplicates.png");

  // Select only the copies of group `gi`.
  const only = (gi) => page.$$eval("#groups .group", (gs, gi) => gs.forEach((g, i) => {
    if (i !== gi) g.querySelectorAll(".select").forEach((s) => { s.checked = false; s.dispatchEvent(new Event("change")); });
  }), gi);
  const copiesOf = (g) => g.members.filter((m) => !m.keep);
  const confirmAnd = async (button, accept) => {
    await page.click(button);
    await page.waitForSelector("#confirm[open]");
    return accept;
  };

  // Cancel changes nothing.
  await only(0);
  await confirmAnd("#dup-remove");
  const listed = await page.$$eval("#confirm-list li", (ls) => ls.map((l) => l.textContent));
  check(listed.length === copiesOf(groups[0]).length, "the confirmation lists the selected files");
  await shot("07-confirm.png");
  await page.click("#confirm-cancel");
  await page.waitForFunction(() => /Nothing changed/.test(document.querySelector("#dupes-status").textContent));
  check((await page.$$("#groups .group")).length === groups.length, "cancel keeps every group");

  // Remove group 0's copies from the collection.
  const removed = copiesOf(groups[0]);
  await only(0);
  groups = await dupes(async () => { await confirmAnd("#dup-remove"); await page.click("#confirm-ok"); });
  for (const m of removed) {
    const r = await page.request.get(`${base}/api/collections/images/records/${m.id}`);
    check(r.status() === 404, `removed record ${m.name} is gone (${r.status()})`);
  }
  console.log(`after remove: ${await page.textContent("#dupes-status")}`);

  // Move group 0's copies (now another group) into the default folder under --root.
  const moved = copiesOf(groups[0]);
  await only(0);
  const to = await page.inputValue("#move-to");
  groups = await dupes(async () => { await confirmAnd("#dup-move"); await page.click("#confirm-ok"); });
  const afterMove = await page.textContent("#dupes-status");
  check(/\d+ moved/.test(afterMove) && !/failed/.test(afterMove), `moved without failures: ${afterMove}`);
  for (const m of moved) console.log(`MOVED ${to}/${m.path.split("/").pop()}`);

  // Delete group 0's copies from disk.
  const deleted = copiesOf(groups[0]);
  await only(0);
  groups = await dupes(async () => { await confirmAnd("#dup-delete"); await page.click("#confirm-ok"); });
  const afterDelete = await page.textContent("#dupes-status");
  check(/\d+ deleted/.test(afterDelete) && !/failed/.test(afterDelete), `deleted without failures: ${afterDelete}`);
  for (const m of deleted) console.log(`DELETED ${m.path}`);
  await shot("08-after-changes.png");

  check(errors.length === 0, `no page errors (${errors.join("; ")})`);
} catch (e) {
  failed = true;
  console.error(e.stack || String(e));
  if (page) await page.screenshot({ path: join(artifacts, "failure.png"), fullPage: true }).catch(() => {});
} finally {
  await context.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
