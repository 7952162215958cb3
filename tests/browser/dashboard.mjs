// Opens guard's dashboard in headless Chromium and checks what a person
// would look for: the failed job, its diagnosis and its evidence lines.
// Usage: node dashboard.mjs URL SCREENSHOT.png EXPECT_CATEGORY EXPECT_EVIDENCE
// Exit status 0 when every check passed; the screenshot is saved either way.
import { chromium } from "playwright-core";

const [url, shot, category, evidence] = process.argv.slice(2);
const executablePath = process.env.CHROMIUM || "/usr/bin/chromium";
const browser = await chromium.launch({ executablePath, args: ["--no-sandbox"] });
let failed = null;
const errors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  page.on("pageerror", (e) => errors.push(String(e)));
  page.on("console", (m) => { if (m.type() === "error") errors.push(m.text()); });
  await page.goto(url, { waitUntil: "load" });
  const row = page.locator("#jobs tbody tr", { hasText: evidence });
  await row.first().waitFor({ timeout: 20000 });
  const text = await row.first().innerText();
  if (!text.includes(category)) failed = `the job row does not show the category ${category}: ${text}`;
  const live = await page.locator("#live").innerText();
  if (!live.startsWith("live")) failed = `the page is not live: ${live}`;
  const bars = await page.locator("#chart svg rect").count();
  if (bars < 1) failed = "the category chart has no bar";
  const plugins = await page.locator("#plugins tbody tr").count();
  if (plugins < 3) failed = `only ${plugins} plugin rows`;
  if (errors.length) failed = `errors in the page: ${errors.join("; ")}`;
  await page.screenshot({ path: shot, fullPage: true });
} catch (e) {
  failed = String(e);
} finally {
  await browser.close();
}
if (failed) {
  console.error("dashboard check failed:", failed);
  process.exit(1);
}
console.log("dashboard shows the diagnosis and evidence");
