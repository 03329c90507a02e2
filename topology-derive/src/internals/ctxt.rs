//! Collects every error of an item, so one compile reports all its mistakes at once.

use std::cell::RefCell;

use quote::ToTokens;

pub(crate) struct Ctxt {
    errors: RefCell<Option<Vec<syn::Error>>>,
}

impl Ctxt {
    pub(crate) fn new() -> Self {
        Ctxt { errors: RefCell::new(Some(Vec::new())) }
    }

    /// An error spanning `tokens`.
    pub(crate) fn error_spanned_by(&self, tokens: impl ToTokens, msg: impl std::fmt::Display) {
        self.push(syn::Error::new_spanned(tokens.into_token_stream(), msg));
    }

    pub(crate) fn push(&self, e: syn::Error) {
        self.errors.borrow_mut().as_mut().expect("checked already").push(e);
    }

    /// All errors combined into one, if any.
    pub(crate) fn check(self) -> syn::Result<()> {
        let mut errors = self.errors.borrow_mut().take().expect("checked once").into_iter();
        match errors.next() {
            None => Ok(()),
            Some(mut first) => {
                first.extend(errors);
                Err(first)
            }
        }
    }
}

impl Drop for Ctxt {
    fn drop(&mut self) {
        if !std::thread::panicking() && self.errors.borrow().is_some() {
            panic!("Ctxt dropped without check()");
        }
    }
}
