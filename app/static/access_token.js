// The logged-in user's access token for the pages that query the database from
// the browser, asked of the app (same-origin POST with the CSRF token) and kept
// until it has 30 s left. A login that has ended sends the browser to sign in.
let cached = null;

export async function accessToken(form) {
  if (cached && cached.expires_at - Date.now() / 1000 > 30) return cached;
  const response = await fetch(form.dataset.tokenUrl, {
    method: "POST",
    headers: { "X-CSRFToken": form.dataset.csrf, Accept: "application/json" },
    credentials: "same-origin",
  });
  const body = await response.json();
  if (response.status === 401) {
    window.location.assign(body.login);
    throw new Error(body.message);
  }
  if (!response.ok) throw new Error(body.message || `token request failed (${response.status})`);
  cached = body;
  return cached;
}
