//! The EC2 test server is the test kit's moto launcher; what the AWS tests add to it.

use aws_sdk_ec2::Client;
pub use vpnbridge_testkit::moto::Moto;

/// A VPC like the contract wants: 10.2.0.0/16 (moto gives it a main route table).
pub async fn create_vpc(client: &Client) -> String {
    let out = client.create_vpc().cidr_block("10.2.0.0/16").send().await.expect("CreateVpc");
    out.vpc().and_then(|v| v.vpc_id()).expect("vpc id").to_owned()
}
