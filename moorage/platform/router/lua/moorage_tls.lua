-- Custom domains' certificates (SNI) and HTTP -> HTTPS redirects, changed at run time.
--
-- Why a shared dict and ssl_certificate_by_lua: a certificate in nginx.conf means a
-- reload for every `certs:add`, and a reload closes idle keep-alive connections. Here
-- the handshake looks the SNI name up (exact name, then "*.<parent>") and sets that
-- certificate; a name without one gets the listener's default (*.<base domain>).
--
-- Keys of the shared dict "moorage_certs":
--   c:<host>  -> "<app>\0<certificate chain PEM>\0<key PEM>" (one value: never a new
--                certificate with an old key during an update)
--   n:<app>   -> "host host ..." (the app's hosts with a certificate, to remove them)
--   f:<app>   -> 1 when the app wants HTTP redirected to HTTPS
local cjson = require "cjson.safe"
local ssl = require "ngx.ssl"
local lrucache = require "resty.lrucache"

local M = {}
local certs = ngx.shared.moorage_certs
local HOST = "^[*a-z0-9][a-z0-9.-]*$"

-- Per worker: parsed certificate and key per host, re-parsed when the dict's value
-- changes; an LRU, so hosts that lost their certificate do not stay in memory.
local parsed = assert(lrucache.new(4096))

local function split(value)
    local first = value:find("\0", 1, true)
    local second = first and value:find("\0", first + 1, true)
    if second == nil then
        return nil
    end
    return value:sub(1, first - 1), value:sub(first + 1, second - 1), value:sub(second + 1)
end

local function lookup(name)
    local value = certs:get("c:" .. name)
    if value ~= nil then
        return name, value
    end
    local parent = name:match("^[^.]+%.(.+)$")
    if parent ~= nil then
        local wildcard = "*." .. parent
        value = certs:get("c:" .. wildcard)
        if value ~= nil then
            return wildcard, value
        end
    end
    return nil, nil
end

--- ssl_certificate_by_lua: the certificate for the SNI name, if an app added one.
function M.certificate()
    local name = ssl.server_name()
    if name == nil then
        return
    end
    local host, value = lookup(name:lower())
    if host == nil then
        return -- the listener's default certificate
    end
    local cached = parsed:get(host)
    if cached == nil or cached.value ~= value then
        local _, cert_pem, key_pem = split(value)
        local cert, err = ssl.parse_pem_cert(cert_pem or "")
        local key, kerr = ssl.parse_pem_priv_key(key_pem or "")
        if cert == nil or key == nil then
            ngx.log(ngx.ERR, "moorage: bad certificate for ", host, ": ", err or kerr)
            return
        end
        cached = { value = value, cert = cert, key = key }
        parsed:set(host, cached)
    end
    local ok, err = ssl.clear_certs()
    if ok then
        ok, err = ssl.set_cert(cached.cert)
    end
    if ok then
        ok, err = ssl.set_priv_key(cached.key)
    end
    if not ok then
        ngx.log(ngx.ERR, "moorage: cannot use the certificate for ", host, ": ", err)
        return ngx.exit(ngx.ERROR)
    end
end

--- set_by_lua: "301" (GET, HEAD) or "308" (other methods, which must keep their body)
--- when the app wants HTTPS and this request came over HTTP; "" otherwise.
function M.redirect()
    local app = ngx.var.moorage_app
    if app == "" or ngx.var.https == "on" or certs:get("f:" .. app) == nil then
        return ""
    end
    local method = ngx.req.get_method()
    return (method == "GET" or method == "HEAD") and "301" or "308"
end

-- -- the control server: PUT and DELETE /tls/<app> -------------------------------------

local function reply(status, body)
    ngx.status = status
    ngx.header["Content-Type"] = "application/json"
    ngx.say(cjson.encode(body))
    return ngx.exit(ngx.HTTP_OK)
end

local function remove(app)
    for host in (certs:get("n:" .. app) or ""):gmatch("%S+") do
        local value = certs:get("c:" .. host)
        if value ~= nil and split(value) == app then
            certs:delete("c:" .. host)
        end
    end
    certs:delete("n:" .. app)
    certs:delete("f:" .. app)
end

-- Every entry is checked (names, PEM that OpenSSL parses) before anything changes.
local function valid(body)
    if type(body) ~= "table" or type(body.certs) ~= "table" then
        return false
    end
    for _, entry in ipairs(body.certs) do
        if type(entry) ~= "table" or type(entry.hosts) ~= "table" or type(entry.cert) ~= "string"
            or type(entry.key) ~= "string" or entry.cert:find("\0", 1, true) or entry.key:find("\0", 1, true)
            or ssl.parse_pem_cert(entry.cert) == nil or ssl.parse_pem_priv_key(entry.key) == nil then
            return false
        end
        for _, host in ipairs(entry.hosts) do
            if type(host) ~= "string" or not host:match(HOST) then
                return false
            end
        end
    end
    return true
end

local function put(app, body)
    local hosts = {}
    local wanted = {}
    for _, entry in ipairs(body.certs) do
        local value = app .. "\0" .. entry.cert .. "\0" .. entry.key
        for _, host in ipairs(entry.hosts) do
            local ok, err = certs:safe_set("c:" .. host, value)
            if not ok then
                return err
            end
            if not wanted[host] then
                hosts[#hosts + 1] = host
                wanted[host] = true
            end
        end
    end
    for host in (certs:get("n:" .. app) or ""):gmatch("%S+") do
        local value = certs:get("c:" .. host)
        if not wanted[host] and value ~= nil and split(value) == app then
            certs:delete("c:" .. host)
        end
    end
    certs:set("n:" .. app, table.concat(hosts, " "))
    if body.force_https == true then
        certs:set("f:" .. app, 1)
    else
        certs:delete("f:" .. app)
    end
    return nil
end

--- The control server's /tls/<app> requests (the app name is checked by the caller).
function M.control(app)
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
    if not valid(body) then
        return reply(400, {
            error = "want {\"certs\": [{\"hosts\": [names], \"cert\": PEM, \"key\": PEM}], \"force_https\": bool}",
        })
    end
    local err = put(app, body)
    if err ~= nil then
        return reply(507, { error = "certificate table: " .. err })
    end
    return reply(200, { app = app, certs = #body.certs })
end

return M
