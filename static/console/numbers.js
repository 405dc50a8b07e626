// Phone numbers: each hold counts down to its end in minutes:seconds. At zero its Buy and Cancel
// are disabled and it says it expired (the server releases the numbers; its pages agree).
// Counted from the seconds the server gave, not the device's clock, which may be off.
document.querySelectorAll("[data-hold]").forEach((hold) => {
  const clock = hold.querySelector("[data-countdown]");
  const end = performance.now() + Number(clock.dataset.countdown) * 1000;
  let timer = null;
  const tick = () => {
    const left = Math.max(0, Math.ceil((end - performance.now()) / 1000));
    clock.textContent = `${Math.floor(left / 60)}:${String(left % 60).padStart(2, "0")}`;
    if (left > 0) return;
    clearInterval(timer);
    hold.querySelectorAll("[data-hold-action]").forEach((button) => (button.disabled = true));
    hold.querySelectorAll("[data-hold-left]").forEach((part) => (part.hidden = true));
    hold.querySelectorAll("[data-hold-expired]").forEach((part) => (part.hidden = false));
  };
  timer = setInterval(tick, 1000);
  tick();
});
