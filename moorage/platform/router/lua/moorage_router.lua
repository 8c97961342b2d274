-- Moorage's router inside nginx: host -> app -> live backends, changed at run time.
--
-- Why Lua: nginx's own upstreams are fixed at configuration time, so every change of an
-- app's processes used to mean a reload, and a reload closes idle keep-alive
-- connections while clients are sending on them. Here the route table lives in a
-- shared dict (one copy for all workers) that Moorage changes through the control
-- server on a unix socket; the nginx configuration stays the same.
--
-- Keys of the shared dict "moorage_routes":
--   h:<host>     -> app name
--   a:<app>      -> "ip:port ip:port ..." (the app's live backends; "" for none)
--   n:<app>      -> "host host ..."        (the app's host names, to remove them)
--   b:<ip:port>  -> requests in flight to that backend (for draining)
local cjson = require "cjson.safe"
local balancer = require "ngx.balancer"

local M = {}
local routes = ngx.shared.moorage_routes
local APP = "^[a-z][a-z0-9-]*$"
local HOST = "^[*a-z0-9][a-z0-9.-]*$"
local PEER = "^([%d.]+):(%d+)$"
local PEER6 = "^%[([%x:.]+)%]:(%d+)$"

-- Per worker: parsed backend lists (re-parsed when the dict's text changes), a
-- round-robin position per app. Parsing once keeps string matching (which LuaJIT runs
-- in its interpreter) off the per-request path.
local parsed = {}
local position = {}

local function parse(text)
    local list = {}
    for peer in text:gmatch("%S+") do
        local ip, port = peer:match(PEER)
        if ip == nil then
            ip, port = peer:match(PEER6)
        end
        list[#list + 1] = { id = peer, key = "b:" .. peer, ip = ip, port = tonumber(port) }
    end
    return list
end

local function peers_of(app)
    local text = routes:get("a:" .. app)
    if text == nil then
        return nil
    end
    local cached = parsed[app]
    if cached ~= nil and cached.text == text then
        return cached.list
    end
    local list = parse(text)
    parsed[app] = { text = text, list = list }
    return list
end

--- set_by_lua: the app serving this request's host (exact name, then "*.<parent>"
--- wildcards), or ""; sets $moorage_up to "0" when the app has no live backend.
function M.route()
    local host = ngx.var.host
    local app = routes:get("h:" .. host)
    if app == nil then
        local rest = host:match("^[^.]+%.(.+)$")
        while rest ~= nil and app == nil do
            app = routes:get("h:*." .. rest)
            rest = rest:match("^[^.]+%.(.+)$")
        end
        if app == nil then
            return ""
        end
    end
    local list = peers_of(app)
    if list == nil or #list == 0 then
        ngx.var.moorage_up = "0"
    end
    return app
end

local function use(peer)
    local ok, err = balancer.set_current_peer(peer.ip, peer.port)
    if not ok then
        ngx.log(ngx.ERR, "moorage: cannot use backend ", peer.id, ": ", err)
        return ngx.exit(502)
    end
    routes:incr(peer.key, 1, 0)
end

--- balancer_by_lua: the next live backend of the app not tried yet by this request.
--- Retries (connect failures, resets before a response) go to another backend; when all
--- were tried and nginx still allows a try (it adds one when a kept-alive connection
--- turns out closed), the next one again, on a new connection.
function M.balance()
    local app = ngx.var.moorage_app
    local list = peers_of(app) or {}
    local n = #list
    if n == 0 then
        return ngx.exit(502)
    end
    local start = position[app] or 0
    local ctx = ngx.ctx
    local tried = ctx.tried
    if tried == nil then
        -- The first try: the next backend round-robin.
        local peer = list[start % n + 1]
        position[app] = (start + 1) % n
        ctx.tried = { [peer.id] = true }
        if n > 1 then
            balancer.set_more_tries(n - 1)
        end
        return use(peer)
    end
    for i = 0, n - 1 do
        local peer = list[(start + i) % n + 1]
        if not tried[peer.id] then
            position[app] = (start + i + 1) % n
            tried[peer.id] = true
            return use(peer)
        end
    end
    position[app] = (start + 1) % n
    return use(list[start % n + 1])
end

--- log_by_lua: the request no longer occupies the backends it tried. They are read from
--- $upstream_addr ("ip:port, ip:port"), which, unlike ngx.ctx, survives the internal
--- redirect to a 502 or 504 page.
function M.done()
    local tried = ngx.var.upstream_addr
    if tried == nil then
        return
    end
    for peer in tried:gmatch("[^ ,]+") do
        if peer ~= ":" then
            -- No initial value: an address that was never counted stays absent.
            routes:incr("b:" .. peer, -1)
        end
    end
end

-- -- the control server -------------------------------------------------------------

local function reply(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(body))
    return ngx.exit(ngx.HTTP_OK)
end

local function words(text)
    local found = {}
    for word in (text or ""):gmatch("%S+") do
        found[#found + 1] = word
    end
    return found
end

local function put(app, hosts, backends)
    local ok, err = routes:safe_set("a:" .. app, table.concat(backends, " "))
    if not ok then
        return err
    end
    local wanted = {}
    for _, host in ipairs(hosts) do
        wanted[host] = true
        ok, err = routes:safe_set("h:" .. host, app)
        if not ok then
            return err
        end
    end
    for _, host in ipairs(words(routes:get("n:" .. app))) do
        if not wanted[host] and routes:get("h:" .. host) == app then
            routes:delete("h:" .. host)
        end
    end
    ok, err = routes:safe_set("n:" .. app, table.concat(hosts, " "))
    return (not ok) and err or nil
end

local function remove(app)
    for _, host in ipairs(words(routes:get("n:" .. app))) do
        if routes:get("h:" .. host) == app then
            routes:delete("h:" .. host)
        end
    end
    routes:delete("n:" .. app)
    routes:delete("a:" .. app)
end

local function valid_list(list, pattern, alt)
    if type(list) ~= "table" then
        return false
    end
    for _, item in ipairs(list) do
        if type(item) ~= "string" or not (item:match(pattern) or (alt and item:match(alt))) then
            return false
        end
    end
    return true
end

local function apps_request(app)
    local method = ngx.req.get_method()
    if method == "DELETE" then
        remove(app)
        return reply(200, { app = app, removed = true })
    end
    if method ~= "PUT" then
        return reply(405, { error = "PUT or DELETE" })
    end
    ngx.req.read_body()
    local body = cjson.decode(ngx.req.get_body_data() or "")
    if type(body) ~= "table" or not valid_list(body.hosts, HOST)
        or not valid_list(body.backends, PEER, PEER6) then
        return reply(400, { error = "want {\"hosts\": [names], \"backends\": [\"ip:port\"]}" })
    end
    local err = put(app, body.hosts, body.backends)
    if err ~= nil then
        return reply(507, { error = "route table: " .. err })
    end
    return reply(200, { app = app, backends = #body.backends })
end

local function in_flight()
    local busy = {}
    for _, key in ipairs(routes:get_keys(0)) do
        if key:sub(1, 2) == "b:" then
            local count = routes:get(key)
            if count ~= nil and count > 0 then
                busy[key:sub(3)] = count
            end
        end
    end
    return busy
end

--- content_by_lua of the control server (a unix socket in a 0700 directory).
function M.control()
    local uri = ngx.var.uri
    if uri == "/healthz" then
        return reply(200, { ok = true })
    end
    if uri == "/inflight" then
        return reply(200, in_flight())
    end
    local kind, app = uri:match("^/(%l+)/(.+)$")
    if (kind ~= "apps" and kind ~= "tls") or not app:match(APP) or #app > 63 then
        return reply(404, { error = "no such resource" })
    end
    if kind == "tls" then
        return moorage_tls.control(app) -- certificates and redirects: moorage_tls.lua
    end
    return apps_request(app)
end

return M
