"""Demo bootstrap, NOT part of the product: makes the local emulator look like
an account that already runs the example services (cluster, a customer
managed KMS key, the services and their first task definitions).

Usage: demo_bootstrap.py ENDPOINT_URL
"""
import sys

import boto3

endpoint = sys.argv[1]
kw = dict(endpoint_url=endpoint, region_name="us-east-1",
          aws_access_key_id="demo", aws_secret_access_key="demo")
ecs = boto3.client("ecs", **kw)
kms = boto3.client("kms", **kw)

if not any(a["AliasName"] == "alias/web" for a in kms.list_aliases()["Aliases"]):
    key = kms.create_key(Description="web service secrets")["KeyMetadata"]["KeyId"]
    kms.create_alias(AliasName="alias/web", TargetKeyId=key)

ecs.create_cluster(clusterName="prod")
ecs.register_task_definition(
    family="web", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="256", memory="512",
    containerDefinitions=[{"name": "web", "image": "public.ecr.aws/docker/library/httpd:2.4", "essential": True}])
ecs.register_task_definition(
    family="worker", networkMode="awsvpc", requiresCompatibilities=["FARGATE"], cpu="512", memory="1024",
    containerDefinitions=[{"name": "worker", "image": "registry.example.com/acme/worker:1.4.2",
                           "command": ["worker", "--queue", "orders"], "essential": True,
                           "environment": [{"name": "QUEUE", "value": "orders"}]}])
existing = {s["serviceName"] for s in ecs.describe_services(cluster="prod", services=["web", "worker"])["services"]
            if s["status"] == "ACTIVE"}
for name in ["web", "worker"]:
    if name not in existing:
        ecs.create_service(cluster="prod", serviceName=name, taskDefinition=name, desiredCount=2)
print(f"demo account ready at {endpoint}: cluster prod, services web and worker, key alias/web")
