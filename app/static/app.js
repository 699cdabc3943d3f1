// Progressive enhancement: forms marked data-enhance submit in the background
// and the page's <main> is swapped for the server's answer, so the list
// updates without a reload. Without JavaScript the same forms post and
// redirect as usual; the server renders every state either way.
"use strict";

document.addEventListener("submit", async (event) => {
  const form = event.target;
  if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-enhance")) return;
  if (form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
    event.preventDefault();
    return;
  }
  event.preventDefault();
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    const response = await fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin" });
    const page = new DOMParser().parseFromString(await response.text(), "text/html");
    const main = page.querySelector("main");
    if (!main) throw new Error("unexpected answer");
    document.querySelector("main").replaceWith(main);
    document.title = page.title;
    // Only a redirect names a page to show; a refused post (400) stays where it was.
    if (response.redirected && response.url !== window.location.href) history.replaceState(null, "", response.url);
    const next = main.querySelector("[aria-invalid='true'], input[name='task']");
    if (next) next.focus();
  } catch (_error) {
    form.submit();  // fall back to the plain form post
  }
});
