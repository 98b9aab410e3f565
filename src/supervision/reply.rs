//! Answers that cannot be forgotten. A [`Responder`] runs its callback exactly
//! once: with the handler's answer, or, if it is dropped unanswered (the
//! handler panicked, the actor stopped with the request still queued), with
//! the [`Unanswered`] value of its type, an `internal` error.

pub trait Unanswered {
    fn unanswered() -> Self;
}

pub struct Responder<R: Unanswered + Send + 'static> {
    callback: Option<Box<dyn FnOnce(R) + Send>>,
}

impl<R: Unanswered + Send + 'static> Responder<R> {
    pub fn new(callback: impl FnOnce(R) + Send + 'static) -> Self {
        Responder {
            callback: Some(Box::new(callback)),
        }
    }

    /// A responder whose answer arrives on a oneshot channel (HTTP handlers).
    pub fn oneshot() -> (Self, tokio::sync::oneshot::Receiver<R>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            Responder::new(move |r| {
                let _ = tx.send(r);
            }),
            rx,
        )
    }

    pub fn respond(mut self, answer: R) {
        if let Some(cb) = self.callback.take() {
            cb(answer);
        }
    }
}

impl<R: Unanswered + Send + 'static> Drop for Responder<R> {
    fn drop(&mut self) {
        if let Some(cb) = self.callback.take() {
            cb(R::unanswered());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq)]
    enum Answer {
        Ok(u32),
        Lost,
    }

    impl Unanswered for Answer {
        fn unanswered() -> Self {
            Answer::Lost
        }
    }

    #[test]
    fn answers_once_and_never_silently() {
        let (r, mut rx) = Responder::<Answer>::oneshot();
        r.respond(Answer::Ok(7));
        assert_eq!(rx.try_recv().unwrap(), Answer::Ok(7));

        let (r, mut rx) = Responder::<Answer>::oneshot();
        drop(r);
        assert_eq!(rx.try_recv().unwrap(), Answer::Lost);

        let (r, mut rx) = Responder::<Answer>::oneshot();
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            let _held = r;
            panic!("handler failed");
        }));
        assert!(outcome.is_err());
        assert_eq!(rx.try_recv().unwrap(), Answer::Lost);
    }
}
