// HTTP client for the tonematch API: bearer tokens, one refresh on 401, uniform errors.

const ACCESS = "tm.access";
const REFRESH = "tm.refresh";

/** An error from the API ({code, message, detail?}) or from the network (code "NETWORK"). */
export class ApiError extends Error {
  constructor(code, message, detail = null, status = 0) {
    super(message || code);
    this.code = code;
    this.detail = detail;
    this.status = status;
  }
}

/** Raised when the session cannot be renewed; the app sends the user back to log in. */
export class SessionExpired extends ApiError {
  constructor() {
    super("UNAUTHORIZED", "session expired", null, 401);
  }
}

export async function parseError(resp) {
  let body = null;
  try {
    body = await resp.json();
  } catch {
    /* not JSON */
  }
  // FastAPI may wrap our body in {detail: {...}}; accept both.
  if (body && typeof body.detail === "object" && body.detail && body.detail.code && !body.code) body = body.detail;
  if (body && body.code) return new ApiError(body.code, body.message, body.detail ?? null, resp.status);
  const code = { 400: "INVALID_INPUT", 401: "UNAUTHORIZED", 403: "FORBIDDEN", 404: "NOT_FOUND",
    409: "CONFLICT", 413: "TOO_LARGE", 422: "INVALID_INPUT", 429: "RATE_LIMITED" }[resp.status] || "INTERNAL";
  const msg = body && typeof body.detail === "string" ? body.detail : resp.statusText;
  return new ApiError(code, msg, body && Array.isArray(body.detail) ? body.detail : null, resp.status);
}

export class Api {
  constructor(base = "") {
    this.base = base;
    this.onExpired = () => {};
    this._refreshing = null;
  }

  get accessToken() { return sessionStorage.getItem(ACCESS); }
  get loggedIn() { return Boolean(sessionStorage.getItem(ACCESS) || localStorage.getItem(REFRESH)); }

  setTokens({ access_token, refresh_token }) {
    if (access_token) sessionStorage.setItem(ACCESS, access_token);
    if (refresh_token) localStorage.setItem(REFRESH, refresh_token);
  }

  clearTokens() {
    sessionStorage.removeItem(ACCESS);
    localStorage.removeItem(REFRESH);
  }

  async login(email, password) {
    const r = await this._fetch("POST", "/auth/login", { email, password }, false);
    this.setTokens(r);
    return r;
  }

  /** Trade the refresh token for a new access token; false when that is no longer possible. */
  async refresh() {
    const rt = localStorage.getItem(REFRESH);
    if (!rt) return false;
    if (!this._refreshing) {
      this._refreshing = (async () => {
        try {
          const r = await this._fetch("POST", "/auth/refresh", { refresh_token: rt }, false);
          this.setTokens(r);
          return true;
        } catch (e) {
          if (e.code === "NETWORK") throw e;
          return false;
        } finally {
          setTimeout(() => { this._refreshing = null; }, 0);
        }
      })();
    }
    return this._refreshing;
  }

  /** JSON request with auth; on 401 refresh once and retry, else SessionExpired. */
  async request(method, path, body) {
    if (!this.accessToken && !(await this.refresh())) return this._expired();
    try {
      return await this._fetch(method, path, body, true);
    } catch (e) {
      if (e.status !== 401) throw e;
      if (!(await this.refresh())) return this._expired();
      try {
        return await this._fetch(method, path, body, true);
      } catch (e2) {
        if (e2.status === 401) return this._expired();
        throw e2;
      }
    }
  }

  get(path) { return this.request("GET", path); }
  post(path, body) { return this.request("POST", path, body ?? {}); }
  patch(path, body) { return this.request("PATCH", path, body ?? {}); }
  del(path) { return this.request("DELETE", path); }

  _expired() {
    this.clearTokens();
    const e = new SessionExpired();
    this.onExpired(e);
    throw e;
  }

  async _fetch(method, path, body, auth) {
    const headers = { Accept: "application/json" };
    if (body !== undefined) headers["Content-Type"] = "application/json";
    if (auth && this.accessToken) headers.Authorization = `Bearer ${this.accessToken}`;
    let resp;
    try {
      resp = await fetch(this.base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
    } catch (err) {
      throw new ApiError("NETWORK", String(err && err.message || err));
    }
    if (!resp.ok) throw await parseError(resp);
    if (resp.status === 204) return null;
    const text = await resp.text();
    return text ? JSON.parse(text) : null;
  }

  /** Auth header for same-origin URLs fetched outside request() (audio, viz, downloads). */
  authHeadersFor(url) {
    const u = new URL(url, location.href);
    if (u.origin !== location.origin || !this.accessToken) return {};
    return { Authorization: `Bearer ${this.accessToken}` };
  }

  /** GET a URL (signed or same-origin) as a Response, refreshing once on 401. */
  async fetchUrl(url, init = {}) {
    const go = () => fetch(url, { ...init, headers: { ...(init.headers || {}), ...this.authHeadersFor(url) } });
    let resp;
    try {
      resp = await go();
      if (resp.status === 401 && new URL(url, location.href).origin === location.origin && (await this.refresh())) resp = await go();
    } catch (err) {
      throw new ApiError("NETWORK", String(err && err.message || err));
    }
    if (!resp.ok) throw await parseError(resp);
    return resp;
  }
}
