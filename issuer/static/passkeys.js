// The browser's side of passkey registration and sign-in. Every call is a
// same-origin POST with the page's CSRF token; the server keeps the challenge.
"use strict";

const csrf = () => document.querySelector('input[name="csrf_token"]').value;

async function post(url, body) {
  const response = await fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": csrf() },
    body: JSON.stringify(body ?? {}),
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) throw new Error(answer.error || "The server refused the request.");
  return answer;
}

function say(element, message) {
  element.textContent = message;
  element.hidden = !message;
}

async function addPasskey(form) {
  const status = form.querySelector("[data-passkey-status]");
  say(status, "");
  try {
    const password = form.querySelector("input[name=password]").value;
    const options = await post(form.dataset.options, { password });
    const credential = await navigator.credentials.create({
      publicKey: PublicKeyCredential.parseCreationOptionsFromJSON(options),
    });
    const name = form.querySelector("input[name=name]").value;
    const answer = await post(form.action, { credential: credential.toJSON(), name });
    window.location.assign(answer.next);
  } catch (error) {
    say(status, error.name === "NotAllowedError" ? "Cancelled." : error.message);
  }
}

async function signIn(form) {
  const status = form.querySelector("[data-passkey-status]");
  say(status, "");
  try {
    const options = await post(form.dataset.options);
    const credential = await navigator.credentials.get({
      publicKey: PublicKeyCredential.parseRequestOptionsFromJSON(options),
    });
    const answer = await post(form.action, { credential: credential.toJSON() });
    window.location.assign(answer.next);
  } catch (error) {
    say(status, error.name === "NotAllowedError" ? "Cancelled." : error.message);
  }
}

for (const form of document.querySelectorAll("form[data-passkey]")) {
  if (!window.PublicKeyCredential) {
    form.hidden = true;
    continue;
  }
  form.hidden = false;
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    (form.dataset.passkey === "add" ? addPasskey : signIn)(form);
  });
}
