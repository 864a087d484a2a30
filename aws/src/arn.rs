//! `TopicArn`: an SNS topic ARN, parsed once wherever one is configured (the
//! agent's topic, the enriched topic, every SNS sink).

use std::fmt;

/// `arn:<partition>:sns:<region>:<account>:<name>`, checked.
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct TopicArn {
    arn: String,
    region: std::ops::Range<usize>,
    account: std::ops::Range<usize>,
    name: std::ops::Range<usize>,
}

impl TopicArn {
    /// Parses an ARN; the error says what is wrong with it.
    pub fn parse(arn: &str) -> Result<TopicArn, String> {
        let bad = |why: &str| {
            format!("{arn:?} is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:NAME): {why}")
        };
        let parts: Vec<&str> = arn.split(':').collect();
        if parts.len() != 6 || parts[0] != "arn" {
            return Err(bad(
                "expected six ':'-separated parts starting with \"arn\"",
            ));
        }
        if !parts[1].starts_with("aws") {
            return Err(bad("the partition must be aws, aws-cn or aws-us-gov"));
        }
        if parts[2] != "sns" {
            return Err(bad("the service must be sns"));
        }
        if parts[3].is_empty() {
            return Err(bad("the region is empty"));
        }
        if parts[4].len() != 12 || !parts[4].bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad("the account must be 12 digits"));
        }
        if parts[5].is_empty() {
            return Err(bad("the topic name is empty"));
        }
        let start = |i: usize| parts[..i].iter().map(|p| p.len() + 1).sum::<usize>();
        let range = |i: usize| start(i)..start(i) + parts[i].len();
        Ok(TopicArn {
            region: range(3),
            account: range(4),
            name: range(5),
            arn: arn.to_string(),
        })
    }

    /// The whole ARN.
    pub fn as_str(&self) -> &str {
        &self.arn
    }

    /// The topic's region, which decides the SNS client's region.
    pub fn region(&self) -> &str {
        &self.arn[self.region.clone()]
    }

    /// The partition (`aws`, `aws-cn`, `aws-us-gov`): that of every role
    /// the same principal can assume.
    pub fn partition(&self) -> &str {
        // `arn:` before it, `:sns:` after it.
        &self.arn[4..self.region.start - 5]
    }

    /// The account that owns the topic.
    pub fn account(&self) -> &str {
        &self.arn[self.account.clone()]
    }

    /// The topic name.
    pub fn name(&self) -> &str {
        &self.arn[self.name.clone()]
    }

    /// Whether it is a FIFO topic (its name ends in `.fifo`).
    pub fn is_fifo(&self) -> bool {
        self.name().ends_with(".fifo")
    }
}

impl TryFrom<String> for TopicArn {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        TopicArn::parse(&s)
    }
}

impl std::str::FromStr for TopicArn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicArn::parse(s)
    }
}

impl fmt::Display for TopicArn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.arn)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parts_are_read_once() {
        let t = TopicArn::parse("arn:aws:sns:eu-west-1:123456789012:alerts.fifo").unwrap();
        assert_eq!(
            (t.region(), t.account(), t.name(), t.is_fifo()),
            ("eu-west-1", "123456789012", "alerts.fifo", true)
        );
        let cn = TopicArn::parse("arn:aws-cn:sns:cn-north-1:123456789012:a").unwrap();
        assert_eq!((t.partition(), cn.partition()), ("aws", "aws-cn"));
        assert_eq!(
            t.to_string(),
            "arn:aws:sns:eu-west-1:123456789012:alerts.fifo"
        );
    }

    #[test]
    fn each_wrong_part_is_named() {
        for (arn, why) in [
            ("alerts", "six"),
            ("arn:aws:sqs:us-east-1:123456789012:q", "service"),
            ("arn:aws:sns::123456789012:t", "region"),
            ("arn:aws:sns:us-east-1:1234:t", "12 digits"),
            ("arn:aws:sns:us-east-1:123456789012:", "name"),
            ("arn:gcp:sns:us-east-1:123456789012:t", "partition"),
        ] {
            let e = TopicArn::parse(arn).unwrap_err();
            assert!(e.contains(why), "{arn}: {e}");
        }
    }
}
