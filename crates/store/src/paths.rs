//! Where the store lives when the user does not say.

use std::ffi::OsString;
use std::path::PathBuf;

/// `sokkel/mail.db` under the platform's per-user data directory, read from
/// `get_env` so tests need not change the process environment.
pub(crate) fn default_path_from(get_env: impl Fn(&str) -> Option<OsString>) -> Option<PathBuf> {
    // Relative values are ignored, as the XDG spec asks and as an empty variable
    // should be: a store that moves with the working directory is a surprise.
    let absolute = |name: &str| {
        get_env(name)
            .map(PathBuf::from)
            .filter(|path| path.is_absolute())
    };
    let data_dir = if cfg!(windows) {
        absolute("APPDATA")?
    } else if cfg!(target_os = "macos") {
        absolute("HOME")?.join("Library/Application Support")
    } else {
        match absolute("XDG_DATA_HOME") {
            Some(dir) => dir,
            None => absolute("HOME")?.join(".local/share"),
        }
    };
    Some(data_dir.join("sokkel").join("mail.db"))
}

#[cfg(all(test, unix, not(target_os = "macos")))]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<OsString> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.into())
    }

    #[test]
    fn xdg_data_home_wins_over_home() {
        let path = default_path_from(env(&[("XDG_DATA_HOME", "/data"), ("HOME", "/home/u")]));
        assert_eq!(path, Some(PathBuf::from("/data/sokkel/mail.db")));
    }

    #[test]
    fn falls_back_to_local_share() {
        let path = default_path_from(env(&[("HOME", "/home/u")]));
        assert_eq!(
            path,
            Some(PathBuf::from("/home/u/.local/share/sokkel/mail.db"))
        );
        let path = default_path_from(env(&[("XDG_DATA_HOME", ""), ("HOME", "/home/u")]));
        assert_eq!(
            path,
            Some(PathBuf::from("/home/u/.local/share/sokkel/mail.db"))
        );
    }

    #[test]
    fn none_without_home() {
        assert_eq!(default_path_from(env(&[])), None);
        assert_eq!(default_path_from(env(&[("HOME", "relative")])), None);
    }
}
