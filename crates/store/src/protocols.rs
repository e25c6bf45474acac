//! The store as the protocols see it: [`Deliver`] for the SMTP shell and
//! [`Mailbox`] for the POP3 shell, with the store's errors turned into the
//! protocol-side ones those traits carry.

use crate::{
    Deliver, DeliverError, Mailbox, MailboxError, MessageId, NewMessage, Store, StoreError,
};

impl From<StoreError> for DeliverError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Full => DeliverError::Full,
            other => DeliverError::Unavailable(other.to_string()),
        }
    }
}

impl From<StoreError> for MailboxError {
    fn from(error: StoreError) -> Self {
        MailboxError::Unavailable(error.to_string())
    }
}

/// Must run inside a tokio runtime (large messages are parsed on its blocking
/// pool); resolves once the message is durable.
impl Deliver for Store {
    async fn deliver(&self, message: NewMessage) -> Result<MessageId, DeliverError> {
        Ok(self.submit(message).await?)
    }
}

/// The inherent methods of the same names, with the error the trait carries.
impl Mailbox for Store {
    fn maildrop(&self, recipient: Option<&str>) -> Result<Vec<(MessageId, u64)>, MailboxError> {
        Ok(Store::maildrop(self, recipient)?)
    }

    fn raw(&self, id: MessageId) -> Result<Option<Vec<u8>>, MailboxError> {
        Ok(Store::raw(self, id)?)
    }

    fn delete(&self, ids: &[MessageId]) -> Result<u64, MailboxError> {
        Ok(Store::delete(self, ids)?)
    }

    fn set_read(&self, ids: &[MessageId], read: bool) -> Result<u64, MailboxError> {
        Ok(Store::set_read(self, ids, read)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SMTP shell logs the error's text and answers 451 whatever it is; a
    /// full store keeps its own variant (and its text) so a client's operator can
    /// tell "delete messages" from "something broke".
    #[test]
    fn store_errors_keep_their_text_across_the_protocol_boundary() {
        let full = DeliverError::from(StoreError::Full);
        assert_eq!(full, DeliverError::Full);
        assert_eq!(full.to_string(), StoreError::Full.to_string());
        for error in [StoreError::Busy, StoreError::Closed] {
            let text = error.to_string();
            assert_eq!(
                DeliverError::from(error.clone()),
                DeliverError::Unavailable(text.clone())
            );
            assert_eq!(MailboxError::from(error).to_string(), text);
        }
    }
}
