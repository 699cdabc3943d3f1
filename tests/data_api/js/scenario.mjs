// Supabase's postgrest-js, unmodified, against the local Data API.
// Reads {"url", "alice", "bob"} (the REST URL and two users' bearer tokens) on
// standard input and prints what the client observed as one JSON object; the
// assertions live in tests/data_api/test_postgrest_js.py.
import { PostgrestClient } from "@supabase/postgrest-js";

const input = JSON.parse(await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
}));

const as = (token) =>
  new PostgrestClient(input.url, { headers: { Authorization: `Bearer ${token}` } });
const alice = as(input.alice);
const bob = as(input.bob);
const observed = {};

// Throws on an error response so a broken step fails loudly with PostgREST's message.
const ok = ({ data, error, count, status }) => {
  if (error) throw new Error(`${status} ${error.code}: ${error.message}`);
  return { data, count, status };
};

const tasks = Array.from({ length: 12 }, (_, n) => ({
  task: `task ${String(n).padStart(2, "0")}`,
  is_complete: n % 3 === 0,
}));
observed.inserted = ok(await alice.from("todos").insert(tasks).select("task, user_id")).data;
observed.bobInserted = ok(await bob.from("todos").insert({ task: "bob's only" }).select()).data;

const page = ok(
  await alice.from("todos").select("task", { count: "exact" }).order("task", { ascending: false }).range(2, 4),
);
observed.page = { tasks: page.data.map((row) => row.task), count: page.count };
observed.done = ok(await alice.from("todos").select("task").eq("is_complete", true).order("task")).data;
observed.either = ok(
  await alice.from("todos").select("task").or("task.eq.task 02,task.eq.task 11").order("task"),
).data;
observed.notDone = ok(await alice.from("todos").select("id").not("is_complete", "eq", true)).data.length;
observed.matching = ok(await alice.from("todos").select("task").ilike("task", "TASK 1%").order("task")).data;
observed.renamed = ok(await alice.from("todos").select("label:task").eq("task", "task 04").single()).data;
observed.headCount = ok(await alice.from("todos").select("*", { count: "exact", head: true })).count;
observed.bobSees = ok(await bob.from("todos").select("task")).data;

const target = observed.inserted[0];
const [{ id }] = ok(await alice.from("todos").select("id").eq("task", target.task)).data;
observed.bobUpdate = ok(await bob.from("todos").update({ task: "pwned" }).eq("id", id).select()).data;
observed.bobDelete = ok(await bob.from("todos").delete().eq("id", id).select()).data;
observed.aliceUpdate = ok(
  await alice.from("todos").update({ is_complete: true }).eq("id", id).select("task, is_complete"),
).data;
observed.aliceDelete = ok(await alice.from("todos").delete().eq("task", "task 11").select("task")).data;
observed.aliceCount = ok(await alice.from("todos").select("*", { count: "exact", head: true })).count;
observed.whoami = ok(await alice.rpc("whoami")).data;
observed.whoamiByGet = ok(await bob.rpc("whoami", {}, { get: true })).data;

const missing = await alice.from("nosuchtable").select("*");
observed.missingTable = { status: missing.status, code: missing.error?.code };
const forged = await alice.from("todos").insert({ task: "x", user_id: "someone else" });
observed.forged = { status: forged.status, code: forged.error?.code };
const anonymous = await new PostgrestClient(input.url).from("todos").select("*");
observed.anonymous = { status: anonymous.status, data: anonymous.data, code: anonymous.error?.code };

process.stdout.write(JSON.stringify(observed));
