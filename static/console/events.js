// The Events page (templates/console/events.html): "all" boxes per service for the event-type
// checkboxes, busy buttons while a form is sent, and the subscriptions list checked again
// while a handshake is under way. No inline handlers: the Content-Security-Policy forbids them.

// Each service's "all" box ticks or clears its group, and shows whether the group is whole.
function syncAll(fieldset) {
  const all = fieldset.querySelector("[data-all]");
  const boxes = [...fieldset.querySelectorAll("input[name=event_types]")];
  const ticked = boxes.filter((box) => box.checked).length;
  all.checked = ticked === boxes.length;
  all.indeterminate = ticked > 0 && ticked < boxes.length;
}
document.querySelectorAll(".event-types fieldset.service").forEach((fieldset) => {
  fieldset.querySelector("label.all").hidden = false;
  syncAll(fieldset);
});
document.addEventListener("change", (event) => {
  const fieldset = event.target.closest(".event-types fieldset.service");
  if (!fieldset) return;
  if (event.target.matches("[data-all]")) {
    fieldset.querySelectorAll("input[name=event_types]").forEach((box) => {
      box.checked = event.target.checked;
    });
  }
  syncAll(fieldset);
});

// A form being sent: its button spins and says what is happening, and a second click sends
// nothing more. (Not `disabled`: a disabled button's name and value would not be sent.)
// Registered after console.js's confirmation, so a cancelled confirmation is seen here.
document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!form.matches("form[data-busy]") || event.defaultPrevented) return;
  if (form.dataset.sending) {
    event.preventDefault();
    return;
  }
  form.dataset.sending = "1";
  const button = event.submitter || form.querySelector("button");
  if (button) {
    button.setAttribute("aria-busy", "true");
    button.textContent = form.dataset.busy;
  }
});
// Back to a page the browser kept: its forms can be sent again.
window.addEventListener("pageshow", (event) => {
  if (event.persisted) window.location.reload();
});

// While a subscription is validating, fetch the list again every 2 s (for a minute at most)
// and show it, until no handshake is under way.
const refreshing = document.querySelector("#subscriptions[data-refresh]");
if (refreshing) {
  let rounds = 0;
  const timer = setInterval(async () => {
    rounds += 1;
    const current = document.querySelector("#subscriptions");
    if (rounds > 30 || !current || current.querySelector("form[data-sending]")) {
      clearInterval(timer);
      return;
    }
    const response = await fetch(current.dataset.refresh, { credentials: "same-origin" });
    if (!response.ok) return;
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const fresh = page.querySelector("#subscriptions");
    if (!fresh) return;
    current.replaceWith(fresh);
    if (!fresh.dataset.refresh) clearInterval(timer);
  }, 2000);
}
