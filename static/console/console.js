// Small progressive enhancements for the console: copy buttons, reveal, confirmations.

// The resource menu's button (narrow screens only, by CSS): shown once this script runs, so
// without it the menu stays open.
document.querySelectorAll(".sidebar-toggle").forEach((toggle) => {
  toggle.hidden = false;
  toggle.addEventListener("click", () => {
    toggle.setAttribute("aria-expanded", String(toggle.getAttribute("aria-expanded") !== "true"));
  });
});
document.addEventListener("click", async (event) => {
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const input = copy.parentElement.querySelector("input");
    try {
      await navigator.clipboard.writeText(input.value);
    } catch {
      input.type = "text";
      input.select();
      document.execCommand("copy");
    }
    copy.textContent = "Copied";
    setTimeout(() => (copy.textContent = "Copy"), 1500);
  }
  const reveal = event.target.closest("[data-reveal]");
  if (reveal) {
    const input = reveal.parentElement.querySelector("input");
    const hidden = input.type === "password";
    input.type = hidden ? "text" : "password";
    reveal.textContent = hidden ? "Hide" : "Show";
  }
});
// Selects that apply at once (no inline handlers: the Content-Security-Policy forbids them).
document.addEventListener("change", (event) => {
  if (event.target.matches("select[data-autosubmit]")) event.target.form.submit();
});
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});

// SMS: the segment count of a message as it is typed (GSM-7 160/153 septets, else UCS-2 70/67).
const GSM7 = "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà";
const GSM7_EXTENDED = "^{}\\[~]|€\f";
function segmentInfo(text) {
  let septets = 0;
  let gsm = true;
  for (const char of text) {
    if (GSM7.includes(char)) septets += 1;
    else if (GSM7_EXTENDED.includes(char)) septets += 2;
    else { gsm = false; break; }
  }
  const units = gsm ? septets : Array.from(text).reduce((n, c) => n + (c.codePointAt(0) > 0xffff ? 2 : 1), 0);
  const [single, part] = gsm ? [160, 153] : [70, 67];
  const segments = units <= single ? 1 : Math.ceil(units / part);
  return { encoding: gsm ? "GSM-7" : "UCS-2", units, segments };
}
document.querySelectorAll("[data-segments]").forEach((area) => {
  const out = document.querySelector(area.dataset.segments);
  const show = () => {
    const info = segmentInfo(area.value);
    out.textContent = `${area.value.length} characters · ${info.encoding} · ${info.segments} segment${info.segments === 1 ? "" : "s"}`;
  };
  area.addEventListener("input", show);
  show();
});

// Live regions: re-fetch a fragment every 2 s (the virtual handset's conversation).
document.querySelectorAll("[data-poll]").forEach((region) => {
  const target = region.querySelector(region.dataset.pollTarget);
  setInterval(async () => {
    const response = await fetch(region.dataset.poll, { credentials: "same-origin" });
    if (response.ok) {
      const html = await response.text();
      if (html !== target.dataset.last) {
        target.innerHTML = html;
        target.dataset.last = html;
      }
    }
  }, 2000);
});
