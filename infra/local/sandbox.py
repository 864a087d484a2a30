#!/usr/bin/env python3
"""A local SNS sandbox in moto for trying the agent by hand (boto3 ships with moto).

  sandbox.py create        # topic "alerts" + SQS queue "alerts-inbox" (raw delivery)
  sandbox.py read          # prints and deletes what reached the queue

Uses AWS_ENDPOINT_URL (default http://127.0.0.1:5000) and static test keys.
"""
import json
import os
import sys

import boto3

ENDPOINT = os.environ.get("AWS_ENDPOINT_URL", "http://127.0.0.1:5000")
KW = dict(endpoint_url=ENDPOINT, region_name=os.environ.get("AWS_REGION", "us-east-1"),
          aws_access_key_id="testing", aws_secret_access_key="testing")


def create():
    sns, sqs = boto3.client("sns", **KW), boto3.client("sqs", **KW)
    topic = sns.create_topic(Name="alerts")["TopicArn"]
    url = sqs.create_queue(QueueName="alerts-inbox")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn, Attributes={"RawMessageDelivery": "true"})
    print(f"export ALERT_TOPIC_ARN={topic}")


def read():
    sqs = boto3.client("sqs", **KW)
    url = sqs.get_queue_url(QueueName="alerts-inbox")["QueueUrl"]
    while True:
        got = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1,
                                  MessageAttributeNames=["All"]).get("Messages", [])
        if not got:
            return
        for m in got:
            attrs = {k: v["StringValue"] for k, v in m.get("MessageAttributes", {}).items()}
            print(json.dumps({"attributes": attrs, "envelope": json.loads(m["Body"])}, indent=2))
            sqs.delete_message(QueueUrl=url, ReceiptHandle=m["ReceiptHandle"])


if __name__ == "__main__":
    {"create": create, "read": read}.get(sys.argv[1] if len(sys.argv) > 1 else "", lambda: sys.exit(__doc__))()
