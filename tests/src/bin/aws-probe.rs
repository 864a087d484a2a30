//! Publishes one SNS message using nothing but the aws-config default
//! credential chain, and prints who it was as JSON. The IRSA test runs it
//! with `AWS_ROLE_ARN` + `AWS_WEB_IDENTITY_TOKEN_FILE` and no static keys, in
//! a clean environment, so the chain must go through STS
//! AssumeRoleWithWebIdentity.
//!
//!   aws-probe TOPIC_ARN MESSAGE [ATTR=VALUE ...]

use aws_sdk_sns::types::MessageAttributeValue;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(topic), Some(message)) = (args.next(), args.next()) else {
        return Err("usage: aws-probe TOPIC_ARN MESSAGE [ATTR=VALUE ...]".into());
    };
    let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let identity = aws_sdk_sts::Client::new(&config)
        .get_caller_identity()
        .send()
        .await?;
    let mut publish = aws_sdk_sns::Client::new(&config)
        .publish()
        .topic_arn(topic)
        .message(message);
    for attr in args {
        let (name, value) = attr.split_once('=').ok_or("attribute must be NAME=VALUE")?;
        publish = publish.message_attributes(
            name,
            MessageAttributeValue::builder()
                .data_type("String")
                .string_value(value)
                .build()?,
        );
    }
    let published = publish.send().await?;
    println!(
        "{}",
        serde_json::json!({
            "arn": identity.arn(),
            "account": identity.account(),
            "message_id": published.message_id(),
        })
    );
    Ok(())
}
