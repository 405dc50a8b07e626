// Identity pickers: every <input data-identity-picker="<search url>"> becomes a combobox that
// suggests the resource's identities as you type (label and short id, from the console's
// identity search, apps/console/views.py identity_search) and puts the chosen one's raw id in
// the input. Without this script the input stays a plain text field taking a raw id.
// A page that adds such inputs later enhances them with SpoolIdentityPicker.enhance(input).
window.SpoolIdentityPicker = (() => {
  const DEBOUNCE_MS = 200;
  let pickers = 0;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  // `8:acs:<resource>_<guid>` -> the GUID's first characters, what a search by id starts with.
  function shortId(rawId) {
    const guid = rawId.slice(rawId.lastIndexOf("_") + 1);
    return guid.length > 8 ? `${guid.slice(0, 8)}…` : guid;
  }

  function enhance(input) {
    if (input.dataset.pickerReady) return;
    input.dataset.pickerReady = "true";
    const list = element("div", "picker-list");
    list.id = `identity-picker-${++pickers}`;
    list.setAttribute("role", "listbox");
    list.setAttribute("aria-label", "Identities");
    list.hidden = true;
    const status = element("span", "visually-hidden");
    status.setAttribute("role", "status");
    // After the input's <label>, not inside it: a label's text is the input's accessible name.
    (input.closest("label") || input).after(list, status);
    input.removeAttribute("list"); // a datalist's own suggestions would cover these
    input.autocomplete = "off";
    input.setAttribute("role", "combobox");
    input.setAttribute("aria-autocomplete", "list");
    input.setAttribute("aria-expanded", "false");
    input.setAttribute("aria-controls", list.id);

    const state = { identities: [], active: -1, timer: 0, request: null };

    // --- Fetching ------------------------------------------------------------------------------
    function cancel() {
      window.clearTimeout(state.timer);
      if (state.request) state.request.abort();
      state.request = null;
    }

    async function search(query) {
      cancel();
      const request = new AbortController();
      state.request = request;
      const url = new URL(input.dataset.identityPicker, window.location.href);
      url.searchParams.set("q", query);
      try {
        const response = await fetch(url, {
          credentials: "same-origin",
          headers: { Accept: "application/json" },
          signal: request.signal,
        });
        if (!response.ok) throw new Error(`HTTP ${response.status}`);
        const data = await response.json();
        // An answer to what the input no longer says is dropped.
        if (state.request === request && input.value.trim() === query) show(data.identities || []);
      } catch (error) {
        if (error.name !== "AbortError") close(); // the input still takes a raw id
      } finally {
        if (state.request === request) state.request = null;
      }
    }

    // --- The list ------------------------------------------------------------------------------
    function show(identities) {
      state.identities = identities;
      list.replaceChildren(
        ...identities.map((identity, index) => {
          const option = element("div", "picker-option");
          option.id = `${list.id}-${index}`;
          option.title = identity.rawId;
          option.setAttribute("role", "option");
          option.setAttribute("aria-selected", "false");
          const label = element("span", "picker-label", identity.label || "No label");
          if (!identity.label) label.classList.add("none");
          option.append(label, element("span", "picker-id", shortId(identity.rawId)));
          return option;
        })
      );
      const count = identities.length;
      status.textContent = count ? `${count} ${count === 1 ? "identity" : "identities"} found` : "";
      if (!count || document.activeElement !== input) {
        close();
        return;
      }
      list.hidden = false;
      input.setAttribute("aria-expanded", "true");
      highlight(-1);
      place();
      window.addEventListener("scroll", place, true);
      window.addEventListener("resize", place);
    }

    function close() {
      list.hidden = true;
      state.active = -1;
      input.setAttribute("aria-expanded", "false");
      input.removeAttribute("aria-activedescendant");
      window.removeEventListener("scroll", place, true);
      window.removeEventListener("resize", place);
    }

    // Fixed under the input: cards scroll what overflows them, which would clip the list.
    function place() {
      const box = input.getBoundingClientRect();
      list.style.left = `${box.left}px`;
      list.style.top = `${box.bottom + 2}px`;
      list.style.minWidth = `${box.width}px`;
      list.style.maxWidth = `${Math.max(box.width, window.innerWidth - box.left - 8)}px`;
    }

    function highlight(index) {
      state.active = index;
      Array.from(list.children).forEach((option, i) => {
        option.setAttribute("aria-selected", String(i === index));
        option.classList.toggle("active", i === index);
      });
      if (index < 0) {
        input.removeAttribute("aria-activedescendant");
        return;
      }
      const option = list.children[index];
      input.setAttribute("aria-activedescendant", option.id);
      option.scrollIntoView({ block: "nearest" });
    }

    function choose(index) {
      const identity = state.identities[index];
      if (!identity) return;
      cancel();
      input.value = identity.rawId;
      close();
      input.dispatchEvent(new Event("change", { bubbles: true }));
    }

    // --- Typing, keys and the mouse ------------------------------------------------------------
    input.addEventListener("input", () => {
      cancel();
      const query = input.value.trim();
      if (!query) {
        close();
        return;
      }
      state.timer = window.setTimeout(() => search(query), DEBOUNCE_MS);
    });

    input.addEventListener("keydown", (event) => {
      const open = !list.hidden;
      const count = state.identities.length;
      if (event.key === "ArrowDown") {
        event.preventDefault();
        if (!open) search(input.value.trim()); // an empty input lists the newest identities
        else highlight(state.active + 1 < count ? state.active + 1 : 0);
      } else if (event.key === "ArrowUp" && open) {
        event.preventDefault();
        highlight(state.active > 0 ? state.active - 1 : count - 1);
      } else if (event.key === "Enter" && open && state.active >= 0) {
        event.preventDefault(); // the form is sent by the next Enter, with the chosen id
        choose(state.active);
      } else if (event.key === "Escape" && open) {
        event.preventDefault();
        close();
      } else if (event.key === "Tab") {
        close();
      }
    });

    input.addEventListener("blur", close);
    if (input.form) {
      input.form.addEventListener("submit", () => {
        cancel();
        close();
      });
    }

    // mousedown, not click: the input keeps the focus, so blur does not close the list first.
    list.addEventListener("mousedown", (event) => {
      event.preventDefault();
      const option = event.target.closest("[role=option]");
      if (option) choose(Array.from(list.children).indexOf(option));
    });
    list.addEventListener("mousemove", (event) => {
      const option = event.target.closest("[role=option]");
      const index = option ? Array.from(list.children).indexOf(option) : -1;
      if (index >= 0 && index !== state.active) highlight(index);
    });
  }

  document.querySelectorAll("input[data-identity-picker]").forEach(enhance);
  return { enhance };
})();
