-- A server URL's credentials (userinfo, query values such as ?key=…) are sealed like probe
-- headers: `url` keeps the URL with them shown as ***, `url_enc` the whole URL, AES-256-GCM
-- sealed. Rows written before this migration are sealed by the daemon at start.
ALTER TABLE servers ADD COLUMN url_enc TEXT;
