// Operation night through the console, in Debian's Chromium, as people
// would use it: an intake officer on a phone-sized page requests a placement
// for a group; a provider in a second browser sees the referrals appear
// without reloading and accepts one with a hand-off; the intake page updates
// live; a business's page shows a donation withdrawn elsewhere live. Also: a wrong token, another role's page, a form without its CSRF
// token, and axe-core on every page in both languages.
//
// Run by services/console/tests/browser.rs, which starts the system and
// passes: CONSOLE_URL (https), CONSOLE_CERT (the throwaway certificate it
// serves), INTAKE_TOKEN, PROVIDER_TOKEN, CHROMIUM, and SCREENSHOTS (a
// directory, optional).
import { chromium } from "playwright-core";
import { readFileSync, mkdirSync, writeFileSync, existsSync } from "node:fs";
import { createRequire } from "node:module";
import { X509Certificate, createHash } from "node:crypto";

const url = process.env.CONSOLE_URL;
const screenshots = process.env.SCREENSHOTS || "";
const axeSource = readFileSync(createRequire(import.meta.url).resolve("axe-core/axe.min.js"), "utf8");
const phone = { width: 375, height: 812 };
const desktop = { width: 1280, height: 900 };

function check(condition, message) {
  if (!condition) throw new Error(message);
}

// axe-core on the page: no serious or critical violation.
async function accessible(page, what) {
  // Evaluated by the test harness: the page's policy refuses inline scripts.
  await page.evaluate(axeSource);
  const results = await page.evaluate(async () => await window.axe.run(document, { resultTypes: ["violations"] }));
  const bad = results.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  check(
    bad.length === 0,
    `${what}: ${bad.map((v) => `${v.id} (${v.impact}): ${v.nodes.map((n) => n.target.join(" ")).join("; ")}`).join(" | ")}`,
  );
  console.log(`axe: ${what}: no serious or critical violation (${results.violations.length} minor)`);
}

// The phone quality bar: at 320 and 390 px wide the page never scrolls
// sideways (a wide table scrolls inside its own box), and every control a
// thumb taps (links, buttons, fields, a checkbox's row) is at least 44 px
// high; a link inside a sentence is exempt (WCAG 2.5.8).
async function fitsPhones(page, what) {
  const before = page.viewportSize();
  for (const width of [320, 390]) {
    await page.setViewportSize({ width, height: 800 });
    const found = await page.evaluate(() => {
      const sideways = document.documentElement.scrollWidth - window.innerWidth;
      const small = [];
      const seen = (e) => {
        const r = e.getBoundingClientRect();
        // (A skip link waits off screen until focused.)
        return r.width > 0 && r.height > 0 && r.right > 0 && getComputedStyle(e).visibility !== "hidden";
      };
      const inSentence = (a) => a.closest("p, li, td, dd") && !a.closest("nav") && !a.matches(".button, .tel");
      for (const e of document.querySelectorAll("a[href], button, input:not([type=hidden]), select, textarea, summary")) {
        if (!seen(e) || (e.matches("a") && inSentence(e))) continue;
        const target = e.matches("input[type=checkbox], input[type=radio]") ? e.closest(".choice") || e : e;
        const h = target.getBoundingClientRect().height;
        if (h < 44) small.push(`${e.tagName.toLowerCase()}${e.id ? "#" + e.id : ""} "${(e.textContent || e.name || "").trim().slice(0, 30)}" ${Math.round(h)}px`);
      }
      // What sticks out, innermost first, to say where.
      const out = [...document.querySelectorAll("body *")]
        .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1 && !e.closest(".wide"))
        .filter((e) => ![...e.children].some((c) => c.getBoundingClientRect().right > window.innerWidth + 1))
        .slice(0, 4)
        .map((e) => `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.trim().slice(0, 30)}"`);
      return { sideways, small, out };
    });
    check(found.sideways <= 0, `${what} at ${width}px scrolls sideways by ${found.sideways}px: ${found.out.join("; ")}`);
    check(found.small.length === 0, `${what} at ${width}px: tap targets under 44px: ${found.small.join("; ")}`);
  }
  await page.setViewportSize(before);
  console.log(`phone: ${what}: fits 320 and 390 px, every tap target 44 px or more`);
}

// axe on the page in English, then in Spanish (the switch), then back; the
// phone quality bar in both.
async function accessibleInBoth(page, what) {
  await accessible(page, `${what} (en)`);
  await fitsPhones(page, `${what} (en)`);
  await page.getByRole("link", { name: "Español" }).click();
  await page.waitForLoadState();
  check((await page.getAttribute("html", "lang")) === "es", `${what}: the page is not in Spanish`);
  await accessible(page, `${what} (es)`);
  await fitsPhones(page, `${what} (es)`);
  await page.getByRole("link", { name: "English" }).click();
  await page.waitForLoadState();
  check((await page.getAttribute("html", "lang")) === "en", `${what}: back in English`);
}

async function shoot(page, name) {
  if (!screenshots) return;
  mkdirSync(screenshots, { recursive: true });
  for (const [size, viewport] of [["phone", phone], ["desktop", desktop]]) {
    await page.setViewportSize(viewport);
    await page.screenshot({ path: `${screenshots}/${name}-${size}.png`, fullPage: true });
  }
  await page.setViewportSize(phone);
}

async function signIn(page, token) {
  await page.goto(`${url}/signin`);
  await page.getByLabel("Token").fill(token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.waitForLoadState();
}

// The console serves a certificate from the test's throwaway CA, which no
// browser trusts: Chromium is told to accept that one key (its SPKI hash)
// and no other; every other certificate error still stops the flow.
const args = [];
if (process.env.CONSOLE_CERT) {
  const spki = new X509Certificate(readFileSync(process.env.CONSOLE_CERT)).publicKey.export({ type: "spki", format: "der" });
  args.push(`--ignore-certificate-errors-spki-list=${createHash("sha256").update(spki).digest("base64")}`);
}
if (url.startsWith("https://") && !args.length) throw new Error("CONSOLE_CERT is needed for an https console");
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM, headless: true, args });
try {
  // A wrong token gets a plain message and no session.
  const stranger = await browser.newContext({ viewport: phone });
  const door = await stranger.newPage();
  await door.goto(`${url}/signin`);
  await accessibleInBoth(door, "sign-in");
  await signIn(door, "not-a-token");
  check(await door.getByText("That token is not valid").isVisible(), "a wrong token is said so");
  check(new URL(door.url()).pathname === "/signin", "a wrong token stays on sign-in");

  // Login CSRF: a page of another site posts the sign-in form with a
  // partner's token into this browser, which has a sign-in page open.
  const elsewherePage = await stranger.newPage();
  await elsewherePage.setContent(
    `<form method="post" action="${url}/signin"><input name="token" value="${process.env.INTAKE_TOKEN}"></form>`,
  );
  const [forgedSignIn] = await Promise.all([
    elsewherePage.waitForNavigation(),
    elsewherePage.evaluate(() => document.forms[0].submit()),
  ]);
  check(forgedSignIn.status() === 403, `a sign-in posted from another site: ${forgedSignIn.status()}`);
  const sessionCookies = (await stranger.cookies()).filter((c) => c.name === "refer_session");
  check(sessionCookies.length === 0, "another site signs this browser in as nobody");
  check((await elsewherePage.getByRole("alert").textContent()).includes("did not come from this page"), "and the person is told");

  // The provider's page is open before anything is requested.
  const providerContext = await browser.newContext({ viewport: phone, timezoneId: "America/Chicago" });
  const provider = await providerContext.newPage();
  await signIn(provider, process.env.PROVIDER_TOKEN);
  check(new URL(provider.url()).pathname === "/provider", `the provider lands on its sites, not ${provider.url()}`);
  check(await provider.getByText("No referrals waiting.").first().isVisible(), "no referral yet");
  // Each capacity says when it was declared, in the coalition's time zone
  // (Los Angeles) though this browser is in Chicago: the beds set just now
  // are fresh; the clinic's count, three days old, is flagged stale, and
  // the partner is reminded to confirm it.
  const asOf = provider.locator("li[data-service]:not([data-stale]) .as-of time").first();
  const asOfText = await asOf.textContent();
  check(/PST|GMT-8/.test(asOfText) && /6:00|18:00/.test(asOfText), `"as of" in the coalition's time zone: ${asOfText}`);
  // (The coalition's clock stands at 2026-11-26 02:00 UTC, when the beds were set.)
  const declared = await asOf.getAttribute("datetime");
  check(declared === "2026-11-26T02:00:00Z", `declared at the coalition's now: ${declared}`);
  const stale = provider.locator("li[data-stale]");
  check((await stale.count()) === 1, `one capacity flagged stale, not ${await stale.count()}`);
  check((await stale.locator(".tag").textContent()) === "stale", "tagged stale");
  const staleSince = await stale.locator("time").getAttribute("datetime");
  check(staleSince === "2026-11-23T02:00:00Z", `declared three days before: ${staleSince}`);
  check(await provider.locator(".reminder").isVisible(), "the partner is reminded to confirm it");
  await accessibleInBoth(provider, "provider sites");

  // The intake officer, on a phone, requests placements for two people.
  // The officer's phone is in Long Beach and lets the console ask where.
  const intakeContext = await browser.newContext({
    viewport: phone,
    geolocation: { latitude: 33.781, longitude: -118.201 },
    permissions: ["geolocation"],
  });
  const intake = await intakeContext.newPage();
  await signIn(intake, process.env.INTAKE_TOKEN);
  check(new URL(intake.url()).pathname === "/intake", `intake lands on its placements, not ${intake.url()}`);
  await accessibleInBoth(intake, "intake placements");
  const started = Date.now();
  await intake.getByRole("link", { name: "New placement" }).first().click();
  await intake.getByLabel("How many people").fill("2");
  await intake.getByRole("button", { name: "Show the forms" }).click();
  await accessibleInBoth(intake, "new placement");
  await shoot(intake, "intake-new-placement");
  await intake.locator("#p0\\.case").fill("NIGHT-A7");
  await intake.locator("#p0\\.needs-shelter").check();
  await intake.locator("#p1\\.case").fill("NIGHT-B8");
  await intake.locator("#p1\\.needs-shelter").check();
  // Languages by name, never a code: the second person speaks Spanish and
  // Mam (ticked and typed), not English; a name that is no language is
  // refused, saying which, with the form kept.
  await intake.locator("#p1\\.languages-en").uncheck();
  await intake.getByLabel("Spanish").nth(1).check();
  await intake.locator("#p1\\.languages\\.other").fill("Klingon");
  // Places by name, never a code: one that is no place of the coalition is
  // refused, naming the field; then the phone's own location is used.
  await intake.getByLabel("A place of the coalition").fill("Springfield");
  await intake.getByLabel("Place them").selectOption("together");
  const [refusedPlace] = await Promise.all([
    intake.waitForNavigation(),
    intake.getByRole("button", { name: "Request placement" }).click(),
  ]);
  check(refusedPlace.status() === 422, `an unknown place: ${refusedPlace.status()}`);
  const noPlace = await intake.getByRole("alert").textContent();
  check(noPlace.includes("Where they are now: “Springfield” is not a place of the coalition"), noPlace);
  check((await intake.locator("#places option").count()) >= 10, "the coalition's places and counties are offered");
  // A phone that refuses its location is said so, not left silent.
  await intakeContext.clearPermissions();
  await intake.getByRole("button", { name: "Use my current location" }).click();
  await intake.waitForFunction(() => document.getElementById("location-status").textContent !== "");
  const refusedHere = await intake.getByRole("status").filter({ hasText: "location" }).textContent();
  check(refusedHere.includes("did not give its location") && refusedHere.includes("Type the place"), refusedHere);
  await intakeContext.grantPermissions(["geolocation"]);
  await intake.getByRole("button", { name: "Use my current location" }).click();
  await intake.waitForFunction(() => document.getElementById("coords").value !== "");
  check((await intake.locator("#location-status").textContent()) === "", "the refusal is gone once it worked");
  check((await intake.getByLabel("A place of the coalition").inputValue()) === "Current location", "the field says so");
  const [refusedLanguage] = await Promise.all([
    intake.waitForNavigation(),
    intake.getByRole("button", { name: "Request placement" }).click(),
  ]);
  check(refusedLanguage.status() === 422, `an unknown language: ${refusedLanguage.status()}`);
  await accessible(intake, "new placement, refused");
  await fitsPhones(intake, "new placement, refused");
  const refusal = await intake.getByRole("alert").textContent();
  check(refusal.includes("Person 2") && refusal.includes("“Klingon” is not a language on the list"), refusal);
  check((await intake.locator("#p1\\.case").inputValue()) === "NIGHT-B8", "the form is kept");
  check(await intake.locator("#p1\\.languages-es").isChecked(), "with its languages");
  check(!(await intake.locator("#p1\\.languages-en").isChecked()), "as ticked");
  await intake.locator("#p1\\.languages\\.other").fill("mam");
  await intake.getByRole("button", { name: "Request placement" }).click();
  await intake.waitForURL(/\/intake\?requested=1/);
  console.log(`intake: a group of two requested in ${Date.now() - started} ms of form work`);
  check(await intake.getByRole("status").isVisible(), "the request is confirmed");
  check((await intake.locator("article.placement").count()) === 2, "both people are listed");
  await shoot(intake, "intake-placements");

  // The provider sees the referrals arrive without reloading.
  const navigations = [];
  provider.on("framenavigated", (frame) => frame === provider.mainFrame() && navigations.push(frame.url()));
  await provider.locator("li.referral").first().waitFor({ timeout: 20000 });
  await provider.locator("p.who", { hasText: "Spanish, Mam" }).waitFor({ timeout: 20000 });
  const due = await provider.locator("li.referral time[data-deadline]").first().textContent();
  check(/^\d\d:\d\d PST/.test(due), `a referral's deadline in the coalition's time zone: ${due}`);
  check(navigations.length === 0, `the provider page reloaded: ${navigations}`);
  check(Number(await provider.locator("#live").getAttribute("data-refreshed")) > 0, "updated live");
  await shoot(provider, "provider-sites");

  // It accepts one with its hand-off.
  const referral = provider.locator("li.referral").first();
  await referral.getByLabel(/Hand-off/).fill("Side door on Elm St; Ana meets you, (555) 010-0110");
  await referral.getByRole("button", { name: "Accept" }).click();
  await provider.waitForLoadState();

  // The intake page, never reloaded, shows where to bring the person.
  const intakeNavigations = [];
  intake.on("framenavigated", (frame) => frame === intake.mainFrame() && intakeNavigations.push(frame.url()));
  await intake.getByText("Side door on Elm St").waitFor({ timeout: 20000 });
  check(intakeNavigations.length === 0, `the intake page reloaded: ${intakeNavigations}`);
  check(await intake.locator("td.status .state", { hasText: "Accepted" }).first().isVisible(), "the need shows accepted");
  check(await intake.getByText("Harbor House").first().isVisible(), "and the site's name");
  // The hand-off first, full width, its phone one tap away on one line.
  const handedOff = intake.locator("article.placement", { has: intake.locator("section.handoff") }).first();
  const handoff = handedOff.locator("section.handoff").first();
  const call = handoff.getByRole("link", { name: "(555) 010-0110" });
  check((await call.getAttribute("href")) === "tel:5550100110", "a tap-to-call link");
  const [box, table, callBox] = [
    await handoff.boundingBox(),
    await handedOff.locator("table").boundingBox(),
    await call.boundingBox(),
  ];
  check(box.y < table.y, "the hand-off above the needs");
  check(box.width >= phone.width - 48, `the hand-off full width: ${box.width}px`);
  check(callBox.height >= 44 && callBox.height < 60, `the phone a 44-px target on one line: ${callBox.height}px`);
  await shoot(intake, "intake-handed-off");
  // The pages with their content, in both languages.
  await accessibleInBoth(intake, "intake placements, one accepted and one proposed");
  // The question a cancel asks first, in both languages; nothing cancelled.
  await intake.getByRole("link", { name: "Cancel" }).first().click();
  await intake.waitForLoadState();
  await accessibleInBoth(intake, "the question before a cancel");
  await intake.goto(`${url}/intake`);
  await accessibleInBoth(provider, "provider sites with a referral waiting and one accepted");

  // A form posted without its CSRF token is refused.
  const forged = await provider.evaluate(async () => {
    const site = document.querySelector("article.site").dataset.site;
    const answer = await fetch(`/provider/sites/${site}/suspend`, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: "csrf=forged",
    });
    return answer.status;
  });
  check(forged === 403, `a forged form answered ${forged}`);
  check(!(await provider.getByText("suspended").isVisible()), "the forged form changed nothing");
  // Another organisation's site, even with this session's own CSRF token:
  // the capacity service answers as for an unknown site.
  const foreign = await provider.evaluate(async () => {
    const csrf = document.querySelector("input[name=csrf]").value;
    const answer = await fetch("/provider/sites/6f1c0a7e0b1d4c479a515c6f0e3b2a10/capacity", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: `csrf=${csrf}&service=1&delta=1`,
    });
    return await answer.text();
  });
  check(foreign.includes("Not found."), "another organisation's site is not found");

  // Another role's pages are refused; so is another organisation's site.
  const wrongPage = await intake.request.get(`${url}/provider`);
  check(wrongPage.status() === 403, `intake opened the provider page: ${wrongPage.status()}`);
  const refused = await provider.goto(`${url}/intake`);
  check(refused.status() === 403, `the provider opened intake: ${refused.status()}`);
  check((await provider.getByRole("alert").textContent()).includes("not for your account"), "and is told so");

  // Security headers: no inline script, no framing.
  const headers = (await intake.request.get(`${url}/intake`)).headers();
  check(headers["content-security-policy"].includes("script-src 'self'"), "a content security policy");
  check(headers["x-frame-options"] === "DENY", "no framing");

  // A business adds hotel rooms.
  const businessContext = await browser.newContext({ viewport: phone });
  const business = await businessContext.newPage();
  await signIn(business, process.env.BUSINESS_TOKEN);
  check(new URL(business.url()).pathname === "/business", `the business lands on its donations, not ${business.url()}`);
  await business.getByRole("link", { name: "New donation" }).first().click();
  await accessibleInBoth(business, "new donation");
  await business.getByLabel("What").selectOption("hotel_room_night");
  await business.getByLabel("How many units").fill("6");
  await business.getByLabel("At most for one person").fill("3");
  await business.getByLabel("A place of the coalition").fill("Long Beach, Los Angeles County");
  await business.getByRole("button", { name: "Register donation" }).click();
  await business.waitForURL(/\/business\?saved=1/);
  check(await business.getByRole("heading", { name: "Hotel room-nights: 6" }).isVisible(), "the rooms are listed");
  await accessibleInBoth(business, "donations");
  await business.locator("article.donation a.button", { hasText: "Hand-off" }).first().click();
  await business.waitForLoadState();
  await accessibleInBoth(business, "a donation's hand-off");
  await business.goto(`${url}/business`);
  await shoot(business, "business-donations");

  // The business's page follows its donations live: withdrawn from a
  // second session, the rooms show it without a reload.
  await business.goto(`${url}/business`);
  const seen = [];
  business.on("framenavigated", (frame) => frame === business.mainFrame() && seen.push(frame.url()));
  const elsewhereContext = await browser.newContext({ viewport: phone });
  const elsewhere = await elsewhereContext.newPage();
  await signIn(elsewhere, process.env.BUSINESS_TOKEN);
  await elsewhere.getByRole("button", { name: "Withdraw" }).first().click();
  await elsewhere.waitForURL(/\/business\?saved=1/);
  await business.locator("article.donation .tag").first().waitFor({ timeout: 20000 });
  check(seen.length === 0, `the business page reloaded: ${seen}`);
  check((await business.locator("article.donation .tag").first().textContent()) === "withdrawn", "shown withdrawn");
  check(Number(await business.locator("#live").getAttribute("data-refreshed")) > 0, "updated live");

  // An admin sees the coalition's picture and adds a partner, whose token
  // (shown once) then signs in.
  const adminContext = await browser.newContext({ viewport: phone });
  const admin = await adminContext.newPage();
  await signIn(admin, process.env.ADMIN_TOKEN);
  check(new URL(admin.url()).pathname === "/admin", `the admin lands on the coalition, not ${admin.url()}`);
  check(await admin.getByText("Needs accepted").isVisible(), "the matcher's counts");
  check(await admin.getByRole("img", { name: "Time from request to acceptance (minutes)" }).isVisible(), "a chart of the time to acceptance");
  await accessibleInBoth(admin, "coalition");
  await admin.getByLabel("Name").fill("Eastside Clinic");
  await admin.getByLabel("Role").selectOption("provider");
  await admin.getByRole("button", { name: "Add a partner" }).click();
  await admin.waitForLoadState();
  const shown = await admin.getByRole("status").textContent();
  const token = shown.split(":").pop().trim();
  check(/^[0-9a-f]{64}$/.test(token), `a token is shown once: ${shown}`);
  // Listed, its new organisation named after it (not a UUID), and offered
  // by that name to the next partner added.
  check((await admin.getByRole("cell", { name: "Eastside Clinic" }).count()) === 2, "the partner and its organisation are listed");
  check((await admin.getByLabel("Of which organisation").locator("option", { hasText: "Eastside Clinic" }).count()) === 1, "offered by name");
  await shoot(admin, "admin-coalition");
  const newcomerContext = await browser.newContext({ viewport: phone });
  const newcomer = await newcomerContext.newPage();
  let welcomed = false;
  for (let i = 0; i < 8 && !welcomed; i++) {
    await signIn(newcomer, token);
    welcomed = new URL(newcomer.url()).pathname === "/provider";
    // Services read the token file again every 2 s; failed tries count
    // against the sign-in limit, so they are spaced.
    if (!welcomed) await newcomer.waitForTimeout(750);
  }
  check(welcomed, `the new partner's token signs in: ${newcomer.url()}: ${await newcomer.locator("main").textContent()}`);

  // The admin reads the month's report: charts and tables, raw and then
  // only what may be published; on a phone, nothing wider than the screen.
  await admin.getByRole("link", { name: "Reports" }).click();
  await admin.waitForURL(/\/reports/);
  check(await admin.getByRole("heading", { name: "the whole coalition" }).isVisible(), "the coalition's report");
  check((await admin.getByRole("status").textContent()).includes("coalition's own eyes"), "raw figures are said to be raw");
  check(await admin.getByRole("img", { name: "Median minutes, month by month, from request to: acceptance" }).isVisible(), "a chart of response times");
  const outcomes = admin.getByRole("table", { name: "needs by kind and outcome" });
  check(await outcomes.isVisible(), "the outcomes table");
  const placedRaw = await outcomes.getByRole("row", { name: /^shelter/ }).getByRole("cell").first().textContent();
  check(/^[0-9]+$/.test(placedRaw), `a raw count: ${placedRaw}`);
  const overflow = await admin.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  check(overflow <= 0, `the report page is ${overflow} px wider than the phone`);
  await accessibleInBoth(admin, "reports");
  await admin.getByLabel("Only what may be published").check();
  await admin.getByRole("button", { name: "Show the report" }).click();
  await admin.waitForURL(/publish=1/);
  check((await admin.getByRole("status").textContent()).includes("< 5"), "the published notice");
  const placedPublished = await admin
    .getByRole("table", { name: "needs by kind and outcome" })
    .getByRole("row", { name: /^shelter/ })
    .getByRole("cell")
    .first()
    .textContent();
  check(placedPublished === "< 5" || placedPublished === "suppressed", `a night's few placements are hidden: ${placedPublished}`);
  await shoot(admin, "admin-report-published");
  const badMonth = await admin.goto(`${url}/reports?from=2026-13`);
  check(badMonth.status() === 422, `a month that is none: ${badMonth.status()}`);
  check((await admin.getByRole("alert").textContent()).includes("First month"), "is named as the form names it");
  // Intake reads its own agency's.
  await intake.goto(`${url}/reports`);
  check(await intake.getByRole("heading", { name: "your organisation" }).isVisible(), "intake reads its own report");

  // One person, from the placements page, in at most 6 taps with the
  // form's defaults (one person, English, adult, immediate, 80 km): the
  // link, the case field, one need, the phone's location, request.
  await intake.goto(`${url}/intake`);
  let taps = 0;
  const tap = async (locator) => {
    taps += 1;
    await locator.click();
  };
  await tap(intake.getByRole("link", { name: "New placement" }).first());
  await intake.waitForLoadState();
  await tap(intake.locator("#p0\\.case"));
  await intake.keyboard.type("NIGHT-D1");
  await tap(intake.locator("#p0\\.needs-shelter"));
  await tap(intake.getByRole("button", { name: "Use my current location" }));
  await intake.waitForFunction(() => document.getElementById("coords").value !== "");
  await tap(intake.getByRole("button", { name: "Request placement" }));
  await intake.waitForURL(/\/intake\?requested=1/);
  check(taps <= 6, `one person requested in ${taps} taps`);
  console.log(`intake: one person requested in ${taps} taps`);

  // The intake service goes down while a form is being filled: the page
  // says which service, and keeps the form. (The test harness stops the
  // service once told the form is ready.)
  await intake.goto(`${url}/intake/new`);
  await intake.locator("#p0\\.case").fill("NIGHT-C9");
  await intake.locator("#p0\\.needs-medical").check();
  await intake.getByLabel("A place of the coalition").fill("pasadena");
  const handshake = process.env.HANDSHAKE;
  writeFileSync(`${handshake}/ready`, "");
  for (let i = 0; i < 300 && !existsSync(`${handshake}/stopped`); i++) await intake.waitForTimeout(100);
  check(existsSync(`${handshake}/stopped`), "the harness did not stop intake");
  await intake.getByRole("button", { name: "Request placement" }).click();
  await intake.waitForLoadState();
  const down = await intake.getByRole("alert").textContent();
  check(down.includes("intake") && down.includes("not answering"), `a service down is said plainly: ${down}`);
  check((await intake.locator("#p0\\.case").inputValue()) === "NIGHT-C9", "the form is kept");
  check(await intake.locator("#p0\\.needs-medical").isChecked(), "every field of it");
  check((await intake.getByLabel("A place of the coalition").inputValue()) === "pasadena", "the place too");

  // Signing out ends the session.
  await intake.goto(`${url}/intake`);
  await intake.getByRole("button", { name: "Sign out" }).click();
  await intake.waitForURL(/\/signin/);
  const after = await intake.request.get(`${url}/intake`, { maxRedirects: 0 });
  check(after.status() === 303 || after.status() === 302 || after.status() === 307, `signed out, yet ${after.status()}`);
  console.log("console flow: all checks passed");
} finally {
  await browser.close();
}
