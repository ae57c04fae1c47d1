//! Telegram (`format: "telegram"`): the Bot API's `sendMessage` to one chat. The bot token is
//! sealed at rest and only ever part of the request URL Telegram needs
//! (`{url}/bot{token}/sendMessage`); the channel's URL is the API's base
//! (`https://api.telegram.org` unless a Bot API server of one's own), and the chat id is the
//! channel's one recipient.

use serde_json::{Value, json};

use crate::store::EventRecord;

/// The Bot API's base URL.
pub const API_URL: &str = "https://api.telegram.org";

/// A bot token as BotFather gives it: the bot's id, a colon, and a secret of 30 or more
/// letters, digits, `_` and `-`.
pub fn validate_bot_token(token: &str) -> Result<(), String> {
    let ok = token.split_once(':').is_some_and(|(id, secret)| {
        !id.is_empty()
            && id.bytes().all(|b| b.is_ascii_digit())
            && secret.len() >= 30
            && secret
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    match ok {
        true => Ok(()),
        false => Err("a Telegram bot token is '<bot id>:<secret>' as BotFather gives it".into()),
    }
}

/// A chat id: a number (negative for groups and channels) or a channel's `@username`.
pub fn validate_chat_id(chat: &str) -> Result<(), String> {
    let number = chat.strip_prefix('-').unwrap_or(chat);
    let numeric = !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    let username = chat
        .strip_prefix('@')
        .is_some_and(|u| u.len() >= 5 && u.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'));
    match numeric || username {
        true => Ok(()),
        false => Err("a Telegram chat id is a number (negative for groups) or @channelname".into()),
    }
}

/// The `sendMessage` URL and body.
pub fn request(
    base: &str,
    token: &str,
    chat_id: &str,
    event: &EventRecord,
    public_url: Option<&str>,
) -> (String, Value) {
    let text = super::webhook::chat_body("slack", event, public_url)["text"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let url = format!("{}/bot{token}/sendMessage", base.trim_end_matches('/'));
    let body = json!({"chat_id": chat_id, "text": text, "disable_web_page_preview": true});
    (url, body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_and_chat_ids_are_checked() {
        assert!(validate_bot_token("123456789:AAFh3kQ-abcdefghijklmnopqrstuvwxyz_0").is_ok());
        assert!(validate_bot_token("abc:def").is_err());
        assert!(validate_bot_token("123456789").is_err());
        assert!(validate_chat_id("-1001234567890").is_ok());
        assert!(validate_chat_id("42").is_ok());
        assert!(validate_chat_id("@mcp_alerts").is_ok());
        assert!(validate_chat_id("ops team").is_err());
    }
}
