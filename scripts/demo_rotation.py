"""Demo helper, NOT part of the product. Subcommands:
  rollout ENDPOINT               what ECS does after UpdateService on AWS (moto needs the nudge)
  wait-ready STATUS_URL          poll /readyz
  rotate ENDPOINT SECRET_NAME    publish a realistic RotationSucceeded event (as Secrets Manager would)
  show STATUS_URL SERVICE...     wait until SERVICE's redeploy rolled out, then print each service's last redeploy and rollout
"""
import json
import sys
import time
import urllib.request

import boto3


def client(name, endpoint):
    return boto3.client(name, endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="demo", aws_secret_access_key="demo")


def get(url):
    try:
        with urllib.request.urlopen(url, timeout=5) as r:
            return r.status, r.read().decode()
    except Exception:
        return 0, ""


cmd = sys.argv[1]
if cmd == "rollout":
    ecs = client("ecs", sys.argv[2])
    time.sleep(1.1)  # deploy strictly after the values were written (1 s timestamps)
    for s in ["web", "worker"]:
        ecs.update_service(cluster="prod", service=s, forceNewDeployment=True)
    time.sleep(1.1)  # values written from now on are newer than these deployments (1 s timestamps)
elif cmd == "wait-ready":
    for _ in range(300):
        if get(sys.argv[2] + "/readyz")[0] == 200:
            break
        time.sleep(0.2)
    else:
        sys.exit("controller did not become ready")
elif cmd == "rotate":
    endpoint, name = sys.argv[2], sys.argv[3]
    arn = client("secretsmanager", endpoint).describe_secret(SecretId=name)["ARN"]
    detail = {"eventVersion": "1.05", "eventSource": "secretsmanager.amazonaws.com", "eventName": "RotationSucceeded",
              "awsRegion": "us-east-1", "additionalEventData": {"SecretId": arn}, "eventType": "AwsServiceEvent",
              "recipientAccountId": "123456789012"}
    client("events", endpoint).put_events(Entries=[{
        "Source": "aws.secretsmanager", "DetailType": "AWS Service Event via CloudTrail", "Detail": json.dumps(detail)}])
    print(f"published RotationSucceeded for {arn}")
elif cmd == "show":
    url, wanted = sys.argv[2], sys.argv[3:]
    for _ in range(300):
        objects = json.loads(get(url + "/status")[1] or "{}").get("objects", {})
        if all(objects.get(f"Service/{s}", {}).get("redeploys", 0) > 0
               and (objects[f"Service/{s}"].get("lastRollout") or {}).get("outcome") for s in wanted):
            break
        time.sleep(0.2)
    for key, obj in objects.items():
        if key.startswith("Service/"):
            last = obj.get("lastRedeploy")
            ready = next(c for c in obj["conditions"] if c["type"] == "Ready")
            cond = {c["type"]: c for c in obj["conditions"]}
            print(f"{key:16} Ready={ready['status']:5} revision={obj.get('lastAppliedRevision')} redeploys={obj['redeploys']}"
                  + (f"  last: {last['reason']} <- {last['trigger']}" if last else ""))
            rollout = obj.get("lastRollout")
            print(f"{'':16} Progressing={cond['Progressing']['status']} ({cond['Progressing']['reason']})"
                  f"  Degraded={cond['Degraded']['status']} ({cond['Degraded']['reason']})"
                  + (f"  rollout {rollout['deploymentId']} ({rollout['trigger']}): {rollout.get('outcome') or 'in progress'}"
                     if rollout else ""))
