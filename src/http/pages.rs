//! The browser pages: the chat client at `/` and the admin console at
//! `/admin/ui`. Plain HTML, CSS and JavaScript from `web/`, embedded in the
//! binary so a single file serves them with no network beyond the server.
//!
//! The pages only call the public API with the user's own token; serving
//! them needs no authorization. Every response carries a Content-Security-
//! Policy that allows scripts, styles and connections to this origin only,
//! so nothing is fetched from elsewhere and no inline script can run.

use actix_web::http::header;
use actix_web::{web, HttpResponse};

/// One embedded file: its bytes and content type.
struct Asset {
    name: &'static str,
    content_type: &'static str,
    bytes: &'static [u8],
}

macro_rules! asset {
    ($name:literal, $type:expr) => {
        Asset {
            name: $name,
            content_type: $type,
            bytes: include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/web/", $name)),
        }
    };
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";

static ASSETS: &[Asset] = &[
    asset!("index.html", HTML),
    asset!("chat.js", JS),
    asset!("chat.css", CSS),
    asset!("admin.html", HTML),
    asset!("admin.js", JS),
    asset!("admin.css", CSS),
];

/// Scripts, styles, images and WebSocket/HTTP calls: this origin only.
const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; \
                   img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
                   form-action 'self'; frame-ancestors 'none'";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/", web::get().to(chat_page))
        .route("/assets/{name}", web::get().to(asset));
}

/// `GET /`: the chat client.
pub async fn chat_page() -> HttpResponse {
    serve("index.html")
}

/// `GET /admin/ui`: the admin console (its data needs an admin token).
pub async fn admin_page() -> HttpResponse {
    serve("admin.html")
}

/// `GET /assets/{name}`: the pages' scripts and styles.
async fn asset(name: web::Path<String>) -> HttpResponse {
    match ASSETS.iter().find(|a| a.name == name.as_str()) {
        Some(a) if a.content_type != HTML => serve(a.name),
        _ => HttpResponse::NotFound()
            .content_type("text/plain; charset=utf-8")
            .body("no such asset"),
    }
}

fn serve(name: &str) -> HttpResponse {
    let Some(a) = ASSETS.iter().find(|a| a.name == name) else {
        return HttpResponse::NotFound().finish();
    };
    HttpResponse::Ok()
        .content_type(a.content_type)
        // Revalidate every time: a new binary must not run with stale scripts.
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CSP))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(bytes(a))
}

/// The embedded bytes; in a debug build, `PARLEY_WEB_DIR` reads the file
/// from that directory instead, so the pages can be edited without a
/// rebuild. Release builds always serve what was embedded.
fn bytes(a: &Asset) -> Vec<u8> {
    #[cfg(debug_assertions)]
    if let Some(dir) = std::env::var_os("PARLEY_WEB_DIR") {
        if let Ok(b) = std::fs::read(std::path::Path::new(&dir).join(a.name)) {
            return b;
        }
    }
    a.bytes.to_vec()
}
