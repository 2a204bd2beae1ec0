//! Slack message markup into plain text for the agent.
//!
//! People write in Slack's markup: `<@U123>` for a mention, `<#C1|ops>` for a channel,
//! `<https://…|label>` for a link, and `&lt;` for `<`. The agent should read what the
//! person saw: names, labels and URLs, unescaped. Names Slack does not put in the text
//! (a bare `<@U123>`) come from the `names` lookup the caller resolved beforehand.

use std::collections::HashMap;

/// User ids mentioned in `text` (`<@U123>` and `<@U123|name>`), for resolving names.
pub fn mentioned_users(text: &str) -> Vec<String> {
    let mut ids = Vec::new();
    for token in tokens(text) {
        if let Some(rest) = token.strip_prefix('@') {
            let id = rest.split('|').next().unwrap_or(rest);
            if !id.is_empty() && !ids.iter().any(|i| i == id) {
                ids.push(id.to_owned());
            }
        }
    }
    ids
}

fn tokens(text: &str) -> impl Iterator<Item = &str> {
    text.split('<').skip(1).filter_map(|part| part.split_once('>').map(|(token, _)| token))
}

/// Converts Slack markup to plain text. `names` maps user ids to display names.
pub fn to_plain(text: &str, names: &HashMap<String, String>) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(open) = rest.find('<') {
        out.push_str(&unescape(&rest[..open]));
        let after = &rest[open + 1..];
        let Some(close) = after.find('>') else {
            out.push_str(&unescape(&rest[open..]));
            rest = "";
            break;
        };
        out.push_str(&token_text(&after[..close], names));
        rest = &after[close + 1..];
    }
    out.push_str(&unescape(rest));
    out
}

/// What one `<…>` token reads as.
fn token_text(token: &str, names: &HashMap<String, String>) -> String {
    let (target, label) = match token.split_once('|') {
        Some((target, label)) => (target, Some(unescape(label))),
        None => (token, None),
    };
    let label = label.filter(|l| !l.is_empty());
    if let Some(user) = target.strip_prefix('@') {
        let name = label.or_else(|| names.get(user).cloned()).unwrap_or_else(|| user.to_owned());
        return format!("@{}", name.trim_start_matches('@'));
    }
    if let Some(channel) = target.strip_prefix('#') {
        return format!("#{}", label.unwrap_or_else(|| channel.to_owned()));
    }
    if let Some(special) = target.strip_prefix('!') {
        // `<!here>`, `<!subteam^S1|@oncall>`, `<!date^…|fallback>`.
        return match label {
            Some(label) => label,
            None => format!("@{}", special.split('^').next().unwrap_or(special)),
        };
    }
    let url = unescape(target);
    match label {
        None => url.strip_prefix("mailto:").unwrap_or(&url).to_owned(),
        Some(label) => {
            let bare = url.split_once("://").map_or(url.as_str(), |(_, rest)| rest);
            let bare = bare.strip_prefix("mailto:").unwrap_or(bare);
            let plain_label = label.trim_end_matches('/');
            if label == url || plain_label == bare.trim_end_matches('/') || url.strip_prefix("mailto:") == Some(&label)
            {
                url.strip_prefix("mailto:").unwrap_or(&url).to_owned()
            } else {
                format!("{label} ({url})")
            }
        }
    }
}

/// Undoes Slack's three escapes. For reading what people wrote, never for writing to
/// Slack: unescaped, `&lt;!channel&gt;` becomes a live `<!channel>`.
pub fn unescape(text: &str) -> String {
    text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")
}

/// `text` without the bot's own mention (`<@BOT>`), so it does not end up in a title.
pub fn without_mention(text: &str, bot: Option<&crate::ids::UserId>) -> String {
    match bot {
        Some(bot) => text.replace(&format!("<@{bot}>"), " ").trim().to_owned(),
        None => text.trim().to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names() -> HashMap<String, String> {
        HashMap::from([("U2".to_owned(), "Dana".to_owned())])
    }

    #[test]
    fn mentions_channels_links_and_entities_become_plain() {
        let text = "<@UBOT> ask <@U2> and <@U3|sam> in <#C1|ops> or <#C2>: see <https://x.io/a?b=1&amp;c=2|the runbook>, \
                    <https://y.io>, <https://z.io|z.io>, <mailto:a@b.io|a@b.io> &lt;3 &amp; <!here> <!subteam^S1|@oncall>";
        insta::assert_snapshot!(to_plain(text, &names()));
    }

    #[test]
    fn finds_mentioned_users_once() {
        assert_eq!(mentioned_users("<@U1> <@U2|x> <@U1> <#C1> <https://a>"), vec!["U1", "U2"]);
    }

    #[test]
    fn unbalanced_markup_is_kept() {
        assert_eq!(to_plain("a < b &amp; <c", &HashMap::new()), "a < b & <c");
    }

    proptest::proptest! {
        #[test]
        fn never_panics(input in "\\PC{0,200}") {
            let _ = to_plain(&input, &HashMap::new());
            let _ = mentioned_users(&input);
        }
    }

    #[test]
    fn the_bots_mention_leaves_the_title() {
        let bot = crate::ids::UserId::new("UBOT");
        assert_eq!(without_mention("<@UBOT> disk full on web-1", Some(&bot)), "disk full on web-1");
    }
}
