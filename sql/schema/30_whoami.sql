-- Locally and on Neon, as the database owner: what the database sees of its
-- caller, in one call both paths can make (`SELECT public.whoami()` over SQL,
-- `POST /rpc/whoami` on the Data API). It runs with the caller's rights
-- (SECURITY INVOKER), so it shows only their own role and verified claims and
-- counts only the rows the policies let them see. The anonymous role may not
-- call it.

CREATE OR REPLACE FUNCTION public.whoami() RETURNS jsonb
    LANGUAGE sql STABLE
    SET search_path = pg_catalog, pg_temp
AS $$
    SELECT jsonb_build_object(
        'role', current_user,
        'user_id', auth.user_id(),
        'session', auth.session(),
        'visible_todos', (SELECT count(*) FROM public.todos)
    )
$$;

REVOKE ALL ON FUNCTION public.whoami() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION public.whoami() TO authenticated;
