import { Certificate, CertificateValidation } from 'aws-cdk-lib/aws-certificatemanager';
import type { ILoadBalancerV2 } from 'aws-cdk-lib/aws-elasticloadbalancingv2';
import { ARecord, HostedZone, type IHostedZone, RecordTarget } from 'aws-cdk-lib/aws-route53';
import { LoadBalancerTarget } from 'aws-cdk-lib/aws-route53-targets';
import { Construct } from 'constructs';

export interface DnsNameProps {
  /** The hosted zone, by id and name: given, never looked up (synth stays offline). */
  readonly hostedZoneId: string;
  readonly zoneName: string;
  /** Full name inside the zone, e.g. `auth.example.com`. */
  readonly hostName: string;
  /** A certificate for the name that exists already. @default - one is issued, validated through the zone */
  readonly certificateArn?: string;
}

/**
 * A public name of one load balancer: an ACM certificate for it (given, or issued and validated
 * through the hosted zone: no e-mail, renewed by ACM), and once `pointAt` is called, the alias record.
 */
export class DnsName extends Construct {
  readonly hostName: string;
  readonly certificateArn: string;
  private readonly zone: IHostedZone;

  constructor(scope: Construct, id: string, props: DnsNameProps) {
    super(scope, id);
    if (!props.hostName.endsWith(`.${props.zoneName}`)) {
      throw new Error(`DnsName: ${props.hostName} is not inside the zone ${props.zoneName}`);
    }
    this.hostName = props.hostName;
    this.zone = HostedZone.fromHostedZoneAttributes(this, 'Zone', {
      hostedZoneId: props.hostedZoneId,
      zoneName: props.zoneName,
    });
    this.certificateArn =
      props.certificateArn ??
      new Certificate(this, 'Certificate', {
        domainName: props.hostName,
        validation: CertificateValidation.fromDns(this.zone),
      }).certificateArn;
  }

  /** The A alias record of the name, to this load balancer. */
  pointAt(loadBalancer: ILoadBalancerV2): void {
    new ARecord(this, 'Record', {
      zone: this.zone,
      recordName: this.hostName,
      target: RecordTarget.fromAlias(new LoadBalancerTarget(loadBalancer)),
    });
  }
}
