// Small progressive enhancements for the console: copy buttons, reveal, confirmations.
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
document.addEventListener("submit", (event) => {
  const message = event.target.dataset.confirm;
  if (message && !window.confirm(message)) event.preventDefault();
});
