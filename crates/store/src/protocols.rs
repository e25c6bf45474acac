//! The store as the protocols see it: [`Deliver`] for the SMTP shell,
//! [`Mailbox`] for the POP3 shell and [`Folders`] for the IMAP shell, with the
//! store's errors turned into the protocol-side ones those traits carry.

use std::time::SystemTime;

use crate::{
    Deliver, DeliverError, FlagEdit, Flags, Folder, FolderMessage, Folders, Mailbox, MailboxError,
    MessageId, NewMessage, Store, StoreError,
};

impl From<StoreError> for DeliverError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Full => DeliverError::Full,
            other => DeliverError::Unavailable(other.to_string()),
        }
    }
}

/// A caller's mistake (a tag name, a folder request) is refused with its
/// text for the client; anything else is the store's trouble.
impl From<StoreError> for MailboxError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::Tag(_) | StoreError::Folder(_) => MailboxError::Refused(error.to_string()),
            other => MailboxError::Unavailable(other.to_string()),
        }
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

/// The store's folder methods ([`Store::folder_messages`] and the others),
/// with the error the trait carries.
impl Folders for Store {
    fn uid_validity(&self, folder: &Folder) -> Result<u32, MailboxError> {
        Ok(self.folder_validity(folder)?)
    }

    fn highest_modseq(&self) -> Result<u64, MailboxError> {
        Ok(Store::highest_modseq(self)?)
    }

    fn folder_names(&self) -> Result<Vec<String>, MailboxError> {
        Ok(Store::folder_names(self)?)
    }

    fn messages(&self, folder: &Folder) -> Result<Option<(Vec<FolderMessage>, u32)>, MailboxError> {
        Ok(self.folder_messages(folder)?)
    }

    fn raw(&self, folder: &Folder, id: MessageId) -> Result<Option<Vec<u8>>, MailboxError> {
        Ok(self.folder_raw(folder, id)?)
    }

    fn set_flags(
        &self,
        folder: &Folder,
        ids: &[MessageId],
        edit: &FlagEdit,
    ) -> Result<(), MailboxError> {
        Ok(self.set_folder_flags(folder, ids, edit)?)
    }

    fn append(
        &self,
        folder: &Folder,
        raw: Vec<u8>,
        flags: &Flags,
        received_at: SystemTime,
    ) -> Result<u32, MailboxError> {
        Ok(self.append_to_folder(folder, raw, flags, received_at)?)
    }

    fn copy(
        &self,
        from: &Folder,
        ids: &[MessageId],
        to: &Folder,
    ) -> Result<Vec<u32>, MailboxError> {
        Ok(self.copy_to_folder(from, ids, to)?)
    }

    fn expunge(&self, folder: &Folder, ids: &[MessageId]) -> Result<(), MailboxError> {
        Ok(self.expunge_from_folder(folder, ids)?)
    }

    fn create_folder(&self, name: &str) -> Result<bool, MailboxError> {
        Ok(Store::create_folder(self, name)?)
    }

    fn delete_folder(&self, name: &str) -> Result<bool, MailboxError> {
        Ok(Store::delete_folder(self, name)?)
    }

    fn rename_folder(&self, from: &str, to: &str) -> Result<bool, MailboxError> {
        Ok(Store::rename_folder(self, from, to)?)
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
