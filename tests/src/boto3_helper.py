"""boto3 (from the venv, where moto brings it) drives CloudFormation, IAM and Lambda in
moto for the tests: there is no CloudFormation, IAM or Lambda SDK crate in this workspace.

    boto3_helper.py OP REQUEST.json   (AWS_ENDPOINT_URL, AWS_REGION: moto)

Prints one JSON value. Run by `MotoServer::boto3`.
"""
import ast, json, os, sys, time
import boto3

KW = dict(endpoint_url=os.environ["AWS_ENDPOINT_URL"], region_name=os.environ["AWS_REGION"],
          aws_access_key_id="testing", aws_secret_access_key="testing")
op, request = sys.argv[1], json.load(open(sys.argv[2]))

if request.get("account"):
    # Another account, as a StackSet works: with the credentials of a role assumed in it (moto
    # maps them to the role's account, whose resources are apart from the default account's).
    creds = boto3.client("sts", **KW).assume_role(
        RoleArn=f"arn:aws:iam::{request['account']}:role/OrganizationAccountAccessRole",
        RoleSessionName="alert-manager-infra-test")["Credentials"]
    KW.update(aws_access_key_id=creds["AccessKeyId"], aws_secret_access_key=creds["SecretAccessKey"],
              aws_session_token=creds["SessionToken"])

def client(name):
    return boto3.client(name, **KW)

def policy_doc(doc):
    # moto keeps a stack's inline policy as a Python repr, with None for AWS::NoValue.
    if isinstance(doc, str):
        try:
            doc = json.loads(doc)
        except ValueError:
            doc = ast.literal_eval(doc)
    if isinstance(doc.get("Statement"), list):
        doc["Statement"] = [s for s in doc["Statement"] if s is not None]
    return doc

def describe(name):
    cf, iam, sqs, sns = client("cloudformation"), client("iam"), client("sqs"), client("sns")
    stack = cf.describe_stacks(StackName=name)["Stacks"][0]
    out = {"status": stack["StackStatus"], "reason": stack.get("StackStatusReason"),
           "outputs": {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])},
           "resources": {}, "roles": {}, "queues": {}, "topics": {}}
    for r in cf.list_stack_resources(StackName=name)["StackResourceSummaries"]:
        if not r.get("LogicalResourceId"):
            continue  # a type moto skips
        out["resources"][r["LogicalResourceId"]] = {"type": r["ResourceType"],
                                                     "id": r.get("PhysicalResourceId")}
        rid = r.get("PhysicalResourceId")
        if r["ResourceType"] == "AWS::IAM::Role":
            role = iam.get_role(RoleName=rid)["Role"]
            policies = {p: policy_doc(iam.get_role_policy(RoleName=rid, PolicyName=p)["PolicyDocument"])
                        for p in iam.list_role_policies(RoleName=rid)["PolicyNames"]}
            out["roles"][r["LogicalResourceId"]] = {
                "arn": role["Arn"], "trust": policy_doc(role["AssumeRolePolicyDocument"]),
                "policies": policies}
        elif r["ResourceType"] == "AWS::SQS::Queue":
            attrs = sqs.get_queue_attributes(QueueUrl=sqs.get_queue_url(QueueName=rid.rsplit("/", 1)[1])["QueueUrl"],
                                             AttributeNames=["All"])["Attributes"]
            out["queues"][rid.rsplit("/", 1)[1]] = attrs
        elif r["ResourceType"] == "AWS::SNS::Topic":
            out["topics"][rid] = sns.get_topic_attributes(TopicArn=rid)["Attributes"]
    return out

def stack_params(params):
    return [{"ParameterKey": k, "ParameterValue": str(v)} for k, v in params.items()]

def wait(name):
    cf = client("cloudformation")
    for _ in range(600):
        status = cf.describe_stacks(StackName=name)["Stacks"][0]["StackStatus"]
        if not status.endswith("_IN_PROGRESS"):
            return
        time.sleep(0.1)

if op in ("create", "update"):
    cf = client("cloudformation")
    call = cf.create_stack if op == "create" else cf.update_stack
    call(StackName=request["stack"], TemplateBody=open(request["template"]).read(),
         Parameters=stack_params(request["parameters"]),
         Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])
    wait(request["stack"])
    result = describe(request["stack"])
    fn = request["parameters"].get("FunctionName")
    if fn:
        result["event_source_mappings"] = client("lambda").list_event_source_mappings(
            FunctionName=fn)["EventSourceMappings"]
    result["account"] = client("sts").get_caller_identity()["Account"]
    print(json.dumps(result, default=str))
elif op == "resolve":
    # moto's CreateStack does not build some types (AWS::SNS::TopicPolicy); its template
    # evaluator still resolves their Condition and Properties with the stack's parameters.
    # In-process moto (not the server), as CreateStack runs it.
    os.environ.pop("AWS_ENDPOINT_URL", None)
    from moto import mock_aws
    from moto.cloudformation.models import cloudformation_backends
    from moto.cloudformation.parsing import clean_json
    with mock_aws():
        kw = {k: v for k, v in KW.items() if k != "endpoint_url"}
        cf = boto3.client("cloudformation", **kw)
        stack_id = cf.create_stack(StackName=request["stack"],
                                   TemplateBody=open(request["template"]).read(),
                                   Parameters=stack_params(request["parameters"]),
                                   Capabilities=["CAPABILITY_IAM", "CAPABILITY_NAMED_IAM"])["StackId"]
        account = boto3.client("sts", **kw).get_caller_identity()["Account"]
        stack = cloudformation_backends[account][KW["region_name"]].stacks[stack_id]
        result = {}
        for logical in request["resources"]:
            resource = stack.template_dict["Resources"][logical]
            condition = resource.get("Condition")
            created = bool(stack.resource_map.lazy_condition_map[condition]) if condition else True
            properties = clean_json(resource["Properties"], stack.resource_map) if created else None
            if properties and isinstance(properties.get("PolicyDocument"), dict):
                properties["PolicyDocument"] = policy_doc(properties["PolicyDocument"])
            result[logical] = {"type": resource["Type"], "created": created, "properties": properties}
    print(json.dumps(result, default=str))
elif op == "function":
    lam = client("lambda")
    config = lam.get_function(FunctionName=request["name"])["Configuration"]
    tags = lam.list_tags(Resource=config["FunctionArn"]).get("Tags", {})
    print(json.dumps({"configuration": config, "tags": tags}, default=str))
elif op == "iam-files":
    iam = client("iam")
    created, errors = [], {}
    for i, f in enumerate(request["files"]):
        doc = json.dumps(f["doc"])
        try:
            if f["kind"] == "trust":
                iam.create_role(RoleName=f"check-{i}", AssumeRolePolicyDocument=doc)
            elif f["kind"] == "key-policy":
                # Statements to add to a key's policy: a key with them after the account's own.
                owner = {"Sid": "AccountAdministersTheKey", "Effect": "Allow",
                         "Principal": {"AWS": f"arn:aws:iam::{request['owner']}:root"},
                         "Action": "kms:*", "Resource": "*"}
                policy = dict(f["doc"], Statement=[owner] + f["doc"]["Statement"])
                key = client("kms").create_key(Policy=json.dumps(policy))["KeyMetadata"]["KeyId"]
                stored = json.loads(client("kms").get_key_policy(KeyId=key, PolicyName="default")["Policy"])
                assert stored == policy, stored
            else:
                iam.create_policy(PolicyName=f"check-{i}", PolicyDocument=doc)
            created.append(f["name"])
        except Exception as e:
            errors[f["name"]] = str(e)
    print(json.dumps({"created": created, "errors": errors}))
else:
    sys.exit(f"unknown op {op}")
