//! A tiny HTTP receiver on a loopback port (webhooks, an OTLP collector
//! stand-in): it answers 200 and keeps every POSTed body.

use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpResponse, HttpServer};

pub type Inbox = Arc<Mutex<Vec<String>>>;

/// Serves POST `path` in its own actix system; returns the port and the bodies.
pub fn http_receiver(path: &'static str) -> (u16, Inbox) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let inbox = Inbox::default();
    let data = web::Data::new(inbox.clone());
    std::thread::spawn(move || {
        actix_rt::System::new().block_on(async move {
            let server = HttpServer::new(move || {
                App::new().app_data(data.clone()).route(
                    path,
                    web::post().to(|body: web::Bytes, inbox: web::Data<Inbox>| async move {
                        inbox
                            .lock()
                            .unwrap()
                            .push(String::from_utf8_lossy(&body).to_string());
                        HttpResponse::Ok()
                            .content_type("application/json")
                            .body("{}")
                    }),
                )
            })
            .workers(1)
            .disable_signals()
            .listen(listener)
            .expect("listen")
            .run();
            let _ = server.await;
        })
    });
    (port, inbox)
}
