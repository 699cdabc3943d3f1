// RP-initiated logout by form post: the ID token travels in the body, never in a URL.
"use strict";

document.addEventListener("DOMContentLoaded", () => {
  const form = document.getElementById("end-session");
  if (form) form.submit();
});
